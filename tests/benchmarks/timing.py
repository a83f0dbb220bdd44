"""Timing the pages and the API in the benchmarks: the 95th percentile of timed calls after untimed ones."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def p95_ms(call: Callable[[], object], runs: int, warm_up: int = 3) -> float:
    """The 95th percentile, in ms, of `runs` timed calls after `warm_up` untimed ones."""
    for _ in range(warm_up):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1_000)
    return statistics.quantiles(times, n=20)[-1]
