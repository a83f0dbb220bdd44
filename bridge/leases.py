"""Leases kept alive by their live holder, so a short lease is safe for long work.

Every piece of claimed work (an outbound send, a Sent-folder append, an INBOX hand-off, a webhook
delivery) is claimed with a conditional UPDATE that sets a lease a minute long. A live holder renews
the leases it still holds every third of that, on a thread of its own, so a slow server never lets
a lease run out under it; a dead holder stops renewing, and its work is taken over by another
process within the lease (at most 60 s). The renewal itself is the caller's UPDATE: one per table.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=60)  # every lease on claimed work; a dead holder's work is free again after it


def process_running(pid: int) -> bool:
    """Whether a process of this host runs: one that has ended still holds what it held until it runs out."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


class Keeper:
    """The ids this process holds leases on, renewed every third of `lease` by `renew(ids)` until released."""

    def __init__(self, renew: Callable[[list[int]], None], what: str, lease: dt.timedelta = LEASE) -> None:
        self._renew = renew
        self._what = what
        self._every = lease.total_seconds() / 3
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rb-lease-{what}", daemon=True)

    def __enter__(self) -> Keeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def add(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._ids.update(ids)

    def done(self, held_id: int) -> None:
        """Stop renewing `held_id`. Call it before recording the outcome: a renewal runs under the same lock,
        so none can overwrite what is recorded after this returns."""
        with self._lock:
            self._ids.discard(held_id)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with self._lock:
                ids = sorted(self._ids)
                if not ids:
                    continue
                try:
                    self._renew(ids)
                except Exception:  # noqa: BLE001 - the database failing: the lease runs out, another process retries
                    log.warning("could not renew the leases on %d %s", len(ids), self._what, exc_info=True)
