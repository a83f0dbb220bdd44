"""When this process's scheduled worker last showed it works: a finished run, or a message sent in a long one.

/readyz (bridge.web.readiness) asks it: the web pages run in the same process as the worker's schedule
(`serve`'s services process, bridge.ops.schedule), so a time kept in memory is enough, and nothing is
written for it. A run that sends a long bulk batch ticks with every message, so only a run that hangs
(a server that never answers, a lock never released) lets the clock stand still.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

_lock = threading.Lock()
_scheduled_at: float | None = None  # time.monotonic() when this process's worker schedule began
_worked_at: float | None = None


@dataclass(frozen=True)
class Since:
    """Seconds since the worker last worked (`ran` True), or since its schedule began when it has not yet."""

    seconds: float
    ran: bool


def scheduled() -> None:
    """The worker's schedule begins in this process (its first run is due now)."""
    global _scheduled_at, _worked_at
    with _lock:
        _scheduled_at, _worked_at = time.monotonic(), None


def worked(*_report: object) -> None:
    """A run finished, or a message of a run was sent (it takes the sender's progress report, unused)."""
    global _worked_at
    with _lock:
        _worked_at = time.monotonic()


def since() -> Since | None:
    """How long the worker has been quiet; None where no worker is scheduled in this process."""
    with _lock:
        if _scheduled_at is None:
            return None
        if _worked_at is None:
            return Since(time.monotonic() - _scheduled_at, ran=False)
        return Since(time.monotonic() - _worked_at, ran=True)
