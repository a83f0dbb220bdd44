"""`replybridge serve`: the SMTP receiver, the IMAP pollers, the worker and the web pages, until SIGINT or SIGTERM.

The worker runs on an APScheduler interval (never two runs at once), and webhook deliveries on one
of their own (a slow receiver never holds up routing or sending); the receiver has its own
event-loop thread and only stores; routing runs in a process of its own; each polled IMAP folder
has a watcher thread, kept in step with the set-up (bridge.ops.pollers). Shutdown stops taking mail
first, then lets the current work finish.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import IO

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from bridge.errors import ConfigError
from bridge.inbound import router_process
from bridge.inbound.smtp_receiver import Receiver, ReceiverConfig
from bridge.ops import worker
from bridge.ops.error_reports import records, report_mail
from bridge.ops.pollers import Pollers
from bridge.ops.webhooks import dispatch

log = logging.getLogger("replybridge.serve")
WORKER_INTERVAL_S = 5.0


def worker_interval() -> float:
    """Seconds between worker runs: REPLYBRIDGE_WORKER_INTERVAL, default 5."""
    value = os.environ.get("REPLYBRIDGE_WORKER_INTERVAL")
    try:
        return max(0.2, float(value)) if value else WORKER_INTERVAL_S
    except ValueError:
        raise ConfigError(f"REPLYBRIDGE_WORKER_INTERVAL={value!r} is not a number of seconds") from None


class WebServer:
    """The web pages and API (uvicorn) on REPLYBRIDGE_WEB_HOST:REPLYBRIDGE_WEB_PORT, in a thread of its
    own with its own event loop; page functions run in uvicorn's thread pool."""

    def __init__(self, eng: Engine) -> None:
        import uvicorn  # the web stack loads only where pages are served

        from bridge.web.app import create_app  # (likewise)

        self.host = os.environ.get("REPLYBRIDGE_WEB_HOST", "127.0.0.1")
        port = os.environ.get("REPLYBRIDGE_WEB_PORT", "8025")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REPLYBRIDGE_WEB_PORT={port!r} is not a port number")
        self.port = int(port)
        trusted = os.environ.get("REPLYBRIDGE_WEB_TRUSTED_PROXIES", "").strip()  # e.g. 127.0.0.1 behind nginx
        config = uvicorn.Config(create_app(eng), host=self.host, port=self.port, log_level="warning",
                                access_log=False, proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None,
                                server_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="rb-web", daemon=True)

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise ConfigError(f"the web server could not listen on {self.host}:{self.port} (port in use?)")
            self.thread.join(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _safe_run(eng: Engine) -> None:
    """One worker run; an error is logged and the next run tries again (the queue keeps the work)."""
    try:
        report = worker.run_once(eng, deliver_webhooks=False)  # _safe_deliver does them
    except Exception as exc:  # noqa: BLE001 - the service must outlive one failed run
        log.exception("worker run failed; retrying at the next interval")
        if records.is_storage_failure(exc):  # error reports: mailed from memory, the database may be what failed
            report_mail.storage_failed(eng, exc)
        return
    if report.sent or report.deferred or report.undeliverable or report.not_sent or report.filed or report.routed:
        log.info("worker: routed %s, sent %s, deferred %s, undeliverable %s, not sent %s, filed %s", report.routed,
                 report.sent, report.deferred, report.undeliverable, report.not_sent, report.filed)


def _safe_deliver(eng: Engine) -> None:
    """One pass over the due webhook deliveries; an error is logged and the next pass tries again."""
    try:
        dispatch.deliver_due(eng)
    except Exception:  # noqa: BLE001 - the service must outlive one failed pass
        log.exception("webhook delivery pass failed; retrying at the next interval")


def _until_signalled(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _scheduler(eng: Engine, interval: float) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(_safe_run, "interval", seconds=interval, args=[eng], max_instances=1, coalesce=True,
                      id="worker", next_run_time=dt.datetime.now(dt.UTC))
    scheduler.add_job(_safe_deliver, "interval", seconds=interval, args=[eng], max_instances=1, coalesce=True,
                      id="webhooks", next_run_time=dt.datetime.now(dt.UTC))
    return scheduler


def run_worker_forever(eng: Engine, interval: float) -> None:
    """`replybridge worker`: the worker alone, every `interval` seconds."""
    _quiet_scheduler_logs()
    stop = threading.Event()
    scheduler = _scheduler(eng, interval)
    scheduler.start()
    log.info("worker running every %.1f s; Ctrl-C stops", interval)
    _until_signalled(stop)
    log.info("stopping")
    scheduler.shutdown(wait=True)


def _quiet_scheduler_logs() -> None:
    """APScheduler logs every run at INFO; the worker's own summary says what happened."""
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def sole_serve_of_sqlite(eng: Engine) -> IO[str] | None:
    """SQLite is for one process: a second `serve` on the same file refuses to start, naming the first. The
    lock is the kernel's (flock on a file beside the database), so it goes with the process that holds it."""
    database = eng.url.database if eng.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return None
    path = Path(database).with_name(Path(database).name + ".serve-lock")
    handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(f"another `replybridge serve` ({holder}) runs on the SQLite database {database}: SQLite is "
                          "for one process; stop that one, or use PostgreSQL (REPLYBRIDGE_DATABASE_URL) to run "
                          "several") from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    return handle


def serve(eng: Engine) -> None:
    """Everything on one database until SIGINT or SIGTERM (the engine: an initialised, current database)."""
    held = sole_serve_of_sqlite(eng)  # noqa: F841 - held open (and locked) for as long as this serve runs
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _quiet_scheduler_logs()
    config = ReceiverConfig.from_env()
    router = router_process.RoutingProcess().start()
    receiver = Receiver(eng, config, route_inline=False)
    receiver.start()
    log.info("SMTP receiver on %s:%s; routing in process %s", config.host, config.port,
             router.process.pid)
    web = WebServer(eng)
    web.start()
    log.info("web pages and API on http://%s:%s/", web.host, web.port)
    stop = threading.Event()
    pollers = Pollers(eng, stop).start()
    interval = worker_interval()
    scheduler = _scheduler(eng, interval)
    scheduler.start()
    log.info("worker every %.1f s, %d IMAP watcher(s); SIGTERM or Ctrl-C stops", interval, len(pollers.running))
    _until_signalled(stop)
    log.info("stopping")
    receiver.stop()
    web.stop()
    pollers.join(timeout=10)
    scheduler.shutdown(wait=True)
    router.stop()
