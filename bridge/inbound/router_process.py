"""The routing process of `serve`: routes stored messages soon after they arrive, in its own process.

Parsing, classifying and routing cost several times what receiving does; in the receiver's
process they would compete with its event loop for the interpreter lock. Here they run beside it, a
batch at a time (pipeline.route_batch claims its rows, so this process and the worker never route one
message twice). Routing comes first: the reply texts of what was routed are read
(pipeline.fill_reply_texts) once nothing waits to be routed.

The parent stops it by closing its end of a pipe: the child sees end-of-file. That also stops the
child when the parent dies, and a dead child cannot block the parent (a multiprocessing Event
would wait for every sleeper, dead or not). Signals to the whole process group (`timeout`,
systemd, Ctrl-C) are the parent's to act on, so the child ignores them.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from bridge.config import logs
from bridge.config.settings import current
from bridge.inbound import pipeline
from models.db import make_engine

log = logging.getLogger("replybridge.routing")


def run(parent: Connection, interval: float) -> None:
    """Route what is stored and not yet routed, every `interval` seconds, until the parent hangs up."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    logs.configure()
    engine = make_engine(current().database_url)
    texts_later: list[int] = []  # routed, their reply texts not read yet: read once nothing waits to be routed
    while True:
        try:
            busy = pipeline.finish_unrouted(engine, texts_later=texts_later) > 0
        except Exception:  # noqa: BLE001 - the messages stay stored; the next pass retries
            log.exception("routing pass failed; retrying")
            busy = False
        if not busy and texts_later:
            pipeline.fill_reply_texts(engine, texts_later[:pipeline.BATCH])
            del texts_later[:pipeline.BATCH]
            busy = bool(texts_later)
        if parent.poll(0 if busy else interval):  # readable means end-of-file: the parent hung up
            break
    engine.dispose()


class RoutingProcess:
    """Start with `start()`, end with `stop()`: hang up, wait, and terminate only if it lingers."""

    def __init__(self, interval: float = 0.2) -> None:
        ctx = multiprocessing.get_context("spawn")
        reader, self._writer = ctx.Pipe(duplex=False)
        self.process: BaseProcess = ctx.Process(target=run, args=(reader, interval), name="replybridge-routing",
                                                daemon=True)
        self._reader = reader

    def start(self) -> RoutingProcess:
        self.process.start()
        self._reader.close()  # the child holds it now
        return self

    def stop(self, timeout: float = 20.0) -> None:
        self._writer.close()
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("routing process did not stop within %.0f s; terminating it", timeout)
            self.process.terminate()
            self.process.join(5)
