"""The worker, the webhook deliveries, the daily retention run and the scheduled loop probe
(bridge.ops.loop_probes) on an APScheduler interval: `serve`'s services process and `replybridge worker` both
run them so.

Each job runs alone (never two runs at once) and outlives its own failures: an error is logged and the
next run tries again, as the queue keeps the work.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from sqlalchemy.engine import Engine

from bridge.config.settings import current
from bridge.ops import loop_probes, worker, worker_clock
from bridge.ops.error_reports import records, report_mail
from bridge.ops.webhooks import dispatch
from bridge.privacy import retention

log = logging.getLogger("replybridge.worker")
RETENTION_EVERY = dt.timedelta(days=1)
RETENTION_FIRST_AFTER = dt.timedelta(minutes=5)  # not at once: a restart loop would run it each time


def worker_interval() -> float:
    """Seconds between worker runs: the worker_interval setting."""
    return current().worker_interval


def safe_run(eng: Engine, route: bool = True) -> None:
    """One worker run; an error is logged and the next run tries again (the queue keeps the work).
    `route=False` in `serve`, whose routing process routes."""
    try:
        # safe_deliver does the webhooks; each message sent ticks the clock /readyz reads (bridge.ops.worker_clock)
        report = worker.run_once(eng, progress=worker_clock.worked, deliver_webhooks=False, route=route)
    except Exception as exc:  # noqa: BLE001 - the service must outlive one failed run
        log.exception("worker run failed; retrying at the next interval")
        if records.is_storage_failure(exc):  # error reports: mailed from memory, the database may be what failed
            report_mail.storage_failed(eng, exc)
        return
    worker_clock.worked()
    if report.sent or report.deferred or report.undeliverable or report.not_sent or report.filed or report.routed:
        log.info("worker: routed %s, sent %s, deferred %s, undeliverable %s, not sent %s, filed %s", report.routed,
                 report.sent, report.deferred, report.undeliverable, report.not_sent, report.filed)


def safe_deliver(eng: Engine) -> None:
    """One pass over the due webhook deliveries; an error is logged and the next pass tries again."""
    try:
        dispatch.deliver_due(eng)
    except Exception:  # noqa: BLE001 - the service must outlive one failed pass
        log.exception("webhook delivery pass failed; retrying at the next interval")


def safe_retention(eng: Engine) -> None:
    """The daily retention run (bridge.privacy.retention); an error is logged and tomorrow's run tries again."""
    try:
        report = retention.run(eng)
    except Exception:  # noqa: BLE001 - the service must outlive one failed run
        log.exception("retention run failed; trying again at the next run")
        return
    if report.removed:
        log.info("retention removed: %s", report.summary())


def scheduler(eng: Engine, interval: float, route: bool = True) -> BackgroundScheduler:
    """The worker's and the webhooks' jobs, each every `interval` seconds from now, retention daily from a few
    minutes on, and the loop probe's check every minute from a minute on; not started."""
    quiet_scheduler_logs()
    worker_clock.scheduled()
    jobs = BackgroundScheduler(timezone="UTC")
    jobs.add_job(safe_run, "interval", seconds=interval, args=[eng, route], max_instances=1, coalesce=True,
                 id="worker", next_run_time=dt.datetime.now(dt.UTC))
    jobs.add_job(safe_deliver, "interval", seconds=interval, args=[eng], max_instances=1, coalesce=True,
                 id="webhooks", next_run_time=dt.datetime.now(dt.UTC))
    jobs.add_job(safe_retention, "interval", seconds=RETENTION_EVERY.total_seconds(), args=[eng], max_instances=1,
                 coalesce=True, id="retention", next_run_time=dt.datetime.now(dt.UTC) + RETENTION_FIRST_AFTER)
    # A round waits minutes for its probes: one at a time is safe_round's own lock (max_instances=1 would log a
    # warning every minute meanwhile), and a probe gives up once shutdown begins, which sets STATE_STOPPED first.
    jobs.add_job(loop_probes.safe_round, "interval", seconds=loop_probes.CHECK_EVERY.total_seconds(),
                 args=[eng, lambda: jobs.state == STATE_STOPPED], max_instances=2, coalesce=True, id="loop_probe")
    return jobs


def quiet_scheduler_logs() -> None:
    """APScheduler logs every run at INFO; the worker's own summary says what happened."""
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGINT or SIGTERM sets `stop`: the process ends its work cleanly instead of dying mid-way."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def run_worker_forever(eng: Engine, interval: float) -> None:
    """`replybridge worker`: the worker alone, every `interval` seconds."""
    stop = threading.Event()
    jobs = scheduler(eng, interval)
    jobs.start()
    log.info("worker running every %.1f s; Ctrl-C stops", interval)
    stop_on_signals(stop)
    stop.wait()
    log.info("stopping")
    jobs.shutdown(wait=True)
