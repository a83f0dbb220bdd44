"""The process of `serve` for everything but receiving: the web pages, the worker and webhooks on
their schedule, and the IMAP watchers.

The SMTP receiver's interpreter does nothing but SMTP and storing: a worker run sending a thousand
hand-offs, or a busy page, in the same interpreter would take the lock every 250 waits on. So they
run here, in a process of their own, as routing does in its own (bridge.inbound.router_process).

The parent learns over a pipe that everything listens ("ready") or what stopped it ("error", the
text of a ConfigError); it stops the child by closing its end, which the child sees as end-of-file,
as it does when the parent dies. Signals to the process group are the parent's to act on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from contextlib import suppress
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from bridge.config import logs
from bridge.config.settings import current
from bridge.errors import ConfigError
from bridge.ops import schedule
from bridge.ops.pollers import Pollers
from bridge.ops.web_server import WebServer
from models.db import make_engine

log = logging.getLogger("replybridge.services")
READY_TIMEOUT_S = 60.0


def run(parent: Connection) -> None:
    """Serve the pages, run the jobs and watch the IMAP folders until the parent hangs up."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    logs.configure()
    engine = make_engine(current().database_url)
    try:
        interval = schedule.worker_interval()
        web = WebServer(engine)
        web.start()
    except ConfigError as err:
        parent.send(("error", str(err)))
        return
    stop = threading.Event()
    pollers = Pollers(engine, stop, owner_pid=os.getppid()).start()  # leases name `serve`, this process's parent
    jobs = schedule.scheduler(engine, interval, route=False)  # the routing process routes
    jobs.start()
    parent.send(("ready", f"http://{web.host}:{web.port}/", interval, len(pollers.running)))
    with suppress(EOFError):  # end-of-file: the parent hung up
        parent.recv()
    stop.set()
    web.stop()
    pollers.join(timeout=10)
    jobs.shutdown(wait=True)
    engine.dispose()


class ServicesProcess:
    """`start()` returns once the pages listen (ConfigError if they cannot); `stop()` ends it cleanly."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(target=run, args=(child,), name="replybridge-services", daemon=True)
        self._child = child

    def start(self) -> tuple[str, float, int]:
        """(the pages' URL, the worker's interval, IMAP watchers started)."""
        self.process.start()
        self._child.close()  # the child holds it now
        if not self._conn.poll(READY_TIMEOUT_S):
            self.stop()
            raise ConfigError(f"the web pages and the worker did not start within {READY_TIMEOUT_S:.0f} s")
        try:
            answer = self._conn.recv()
        except EOFError:
            answer = ("error", f"the web pages and the worker ended while starting (exit code {self.process.exitcode})")
        if answer[0] == "error":
            self.stop()
            raise ConfigError(answer[1])
        return answer[1], answer[2], answer[3]

    def stop(self, timeout: float = 30.0) -> None:
        self._conn.close()
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("the services process did not stop within %.0f s; terminating it", timeout)
            self.process.terminate()
            self.process.join(5)
