"""Running one call in several threads at once, for the races the tests stage (two workers, two routers,
two retention runs): what each thread raised is returned, so the test asserts on it."""

from __future__ import annotations

import threading
from collections.abc import Callable


def errors_of(call: Callable[[], object], threads: int, timeout: float = 60) -> list[BaseException]:
    """Start `threads` threads running `call`, wait for them (at most `timeout` s each), return what they raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            errors.append(err)
    started = [threading.Thread(target=run) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join(timeout)
    return errors
