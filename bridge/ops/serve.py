"""`replybridge serve`: the SMTP receiver, the IMAP pollers, the worker and the web pages, until SIGINT or SIGTERM.

Three processes. This one receives (SMTP and the `ingest` socket) and only stores, on an event-loop
thread of its own; routing runs in a routing process (bridge.inbound.router_process); the web pages,
the worker, the webhooks and the IMAP watchers run in a services process
(bridge.ops.services_process). Each interpreter then does one thing, and the 250 never waits for a
page or a worker run. This process looks after the other two: one that ends is started again.
Shutdown stops taking mail first, then lets the current work finish.

Under systemd (`Type=notify`, deploy/replybridge.service) it says READY=1 once the SMTP port and the pages
listen, STOPPING=1 when told to stop, and pings the watchdog while the receiver's event loop answers
(bridge.ops.systemd_notify).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import logging
import os
import socket
import threading
from pathlib import Path
from typing import IO

from sqlalchemy.engine import Engine

from bridge import metrics
from bridge.config import logs
from bridge.errors import ConfigError
from bridge.inbound import router_process
from bridge.inbound.smtp_receiver import Receiver, ReceiverConfig
from bridge.ops import schedule, systemd_notify
from bridge.ops.services_process import ServicesProcess
from models.db import make_engine

log = logging.getLogger("replybridge.serve")
WATCH_S = 5.0  # how often the routing and services processes are checked on


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
                          "for one process; stop that one, or use PostgreSQL (the database_url setting) to run "
                          "several") from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    return handle


def serve(eng: Engine) -> None:
    """Everything on one database until SIGINT or SIGTERM (the engine: an initialised, current database)."""
    held = sole_serve_of_sqlite(eng)  # noqa: F841 - held open (and locked) for as long as this serve runs
    counts = metrics.share_between_processes()  # before anything counts and before the children start
    logs.configure()
    config = ReceiverConfig.from_settings()
    router = router_process.RoutingProcess().start()
    # its own engine: its commits leave the write-ahead log's copying to the routing process (models.db)
    receiver = Receiver(make_engine(eng.url.render_as_string(hide_password=False), checkpoints=False), config,
                        route_inline=False)
    services = ServicesProcess()
    systemd_notify.status("starting: the SMTP receiver, then the pages, the worker and the IMAP watchers")
    try:
        receiver.start()
        log.info("SMTP receiver on %s:%s; routing in process %s", config.host, config.port, router.process.pid)
        url, interval, watchers = services.start()
    except BaseException:
        if receiver.loop.is_running():
            receiver.stop()
        router.stop()
        metrics.stop_sharing(counts)
        raise
    log.info("web pages and API on %s; they and the worker in process %s", url, services.process.pid)
    log.info("worker every %.1f s, %d IMAP watcher(s); SIGTERM or Ctrl-C stops", interval, watchers)
    stop = threading.Event()
    schedule.stop_on_signals(stop)
    systemd_notify.ready(f"receiving mail on {config.host}:{config.port}; pages on {url}; worker every "
                         f"{interval:.1f} s; {watchers} IMAP watcher(s)")
    beat = systemd_notify.watchdog_interval()
    while not stop.wait(min(WATCH_S, beat or WATCH_S)):
        router, services = _kept_running(router, services)
        if beat and _answers(receiver, beat):
            systemd_notify.watchdog()
    log.info("stopping")
    systemd_notify.stopping("stopping: no new mail is taken; the current work finishes")
    receiver.stop()
    services.stop()
    router.stop()
    metrics.stop_sharing(counts)


def _answers(receiver: Receiver, timeout: float) -> bool:
    """The receiver's event loop runs a call within `timeout`: no watchdog ping for a loop that is stuck."""
    try:
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), receiver.loop).result(timeout)
    except (concurrent.futures.TimeoutError, RuntimeError):  # stuck, or no longer running
        log.warning("the SMTP receiver's event loop did not answer within %.1f s", timeout)
        return False
    return True


def _kept_running(router: router_process.RoutingProcess,
                  services: ServicesProcess) -> tuple[router_process.RoutingProcess, ServicesProcess]:
    """A routing or services process that has ended (killed, out of memory) is started again."""
    if not router.process.is_alive():
        log.error("the routing process ended (exit code %s); starting it again", router.process.exitcode)
        metrics.process_ended(router.process.pid)
        router = router_process.RoutingProcess().start()
        log.info("routing in process %s", router.process.pid)
    if not services.process.is_alive():
        log.error("the web pages and worker process ended (exit code %s); starting it again",
                  services.process.exitcode)
        metrics.process_ended(services.process.pid)
        services = ServicesProcess()
        try:
            services.start()
            log.info("web pages and worker in process %s", services.process.pid)
        except ConfigError as err:
            log.error("could not start them again (%s); trying again in %.0f s", err, WATCH_S)
    return router, services
