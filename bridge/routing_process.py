"""The routing process of `serve`: routes stored messages soon after they arrive, in its own process.

Parsing, classifying and routing cost about ten times what receiving does; in the receiver's
process they would compete with its event loop for the interpreter lock. Here they run beside it,
and `ingest.process` claims each row, so this process and the worker never route one message twice.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from multiprocessing.synchronize import Event

from bridge import ingest

log = logging.getLogger("replybridge.routing")


def run(stop: Event, interval: float) -> None:
    """Route what is stored and not yet routed, every `interval` seconds, until `stop` is set."""
    from models.db import make_engine

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent process decides when to stop
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = make_engine()
    while not stop.is_set():
        try:
            if ingest.finish_unrouted(engine):
                continue  # more may be waiting: look again at once
        except Exception:  # noqa: BLE001 - the messages stay stored; the next pass retries
            log.exception("routing pass failed; retrying")
        stop.wait(interval)
    engine.dispose()


def start(interval: float = 0.2) -> tuple[multiprocessing.Process, Event]:
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    process = ctx.Process(target=run, args=(stop, interval), name="replybridge-routing", daemon=True)
    process.start()
    return process, stop
