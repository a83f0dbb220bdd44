"""`replybridge serve`: the long-running service, scheduled with APScheduler."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from bridge import worker
from bridge.cli.common import engine

log = logging.getLogger("replybridge.serve")


def _safe_run(eng: Engine) -> None:
    """One worker run; an error is logged and the next run tries again (the queue keeps the work)."""
    try:
        report = worker.run_once(eng)
    except Exception:  # noqa: BLE001 - the service must outlive one failed run
        log.exception("worker run failed; retrying at the next interval")
        return
    if report.sent or report.deferred or report.undeliverable or report.not_sent or report.filed:
        log.info("worker: sent %s, deferred %s, undeliverable %s, not sent %s, filed %s", report.sent,
                 report.deferred, report.undeliverable, report.not_sent, report.filed)


def run_worker_forever(eng: Engine, interval: float) -> None:
    """Run the worker every `interval` seconds (never two runs at once) until SIGINT or SIGTERM."""
    stop = threading.Event()
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(_safe_run, "interval", seconds=interval, args=[eng], max_instances=1, coalesce=True,
                      id="worker", next_run_time=dt.datetime.now(dt.UTC))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.start()
    log.info("worker running every %.1f s; Ctrl-C stops", interval)
    stop.wait()
    log.info("stopping")
    scheduler.shutdown(wait=True)


def serve() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker_forever(engine(), 5.0)
