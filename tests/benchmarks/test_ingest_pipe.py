"""`replybridge ingest - < one.eml` as an MTA's pipe runs it, a process per message, beside a running
`serve` (pytest -m benchmark).

Baseline, in the same run: `python -c 'import email, sqlite3'`, the least a Python pipe that parses and
stores could cost. The issue measured 24 ms for it and set the goal at 150 ms for the command: the goal is
that ratio, 6.25x the baseline, so it holds on any machine. The command's peak memory is printed beside.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.benchmarks import table
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import routed
from tests.helpers.messages import candidate
from tests.servers.web import start_serve, stop_serve

RUNS = 30
TIME = Path("/usr/bin/time")
GOAL_RATIO = 150 / 24


def timed(argv: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> float:
    """Seconds of one process, as an MTA would start it."""
    started = time.perf_counter()
    subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started


def peak_mb(argv: list[str], stdin: bytes, env: dict[str, str]) -> float | None:
    """Peak resident memory by /usr/bin/time, whose small process forks the command: a child of this test
    process would count the copy of it that it was before its exec."""
    if not TIME.exists():
        return None
    done = subprocess.run([str(TIME), "-f", "%M", *argv], input=stdin, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env, check=True)
    return int(done.stderr.split()[-1]) / 1024


@pytest.mark.benchmark
def test_ingest_as_an_mta_pipe_starts_in_a_blink(lite_bridge: Bridge, tmp_path: Path) -> None:
    command = str(Path(sys.executable).with_name("replybridge"))
    baseline = statistics.median(timed([sys.executable, "-c", "import email, sqlite3"]) for _ in range(RUNS))
    with tempfile.TemporaryDirectory(prefix="rbb-", dir="/tmp") as folder:
        served = start_serve(lite_bridge, tmp_path, {"REPLYBRIDGE_INGEST_SOCKET": f"{folder}/ingest"})
        try:
            env = {**os.environ, "REPLYBRIDGE_INGEST_SOCKET": f"{folder}/ingest"}
            runs = [timed([command, "ingest", "-"], candidate(n), env) for n in range(RUNS)]
            peak = peak_mb([command, "ingest", "-"], candidate(RUNS), env)
            routed(lite_bridge, RUNS + 1, timeout=30)
        finally:
            stop_serve(served)
    alone = statistics.median(timed([command, "ingest", "-"], candidate(RUNS + 1 + n)) for n in range(5))
    ours = statistics.median(runs)
    memory = f"{peak:.0f} MB" if peak is not None else "memory not measured (no /usr/bin/time)"
    ratio = ours / baseline
    print(f"\ningest pipe: baseline {baseline * 1000:.0f} ms, replybridge {ours * 1000:.0f} ms ({ratio:.1f}x, goal <= "
          f"{GOAL_RATIO:.2f}x), peak {memory}; with no serve running (stores and routes itself): "
          f"{alone * 1000:.0f} ms")
    assert table.record("`replybridge ingest - < one.eml` as an MTA pipe runs it, per message, `serve` running",
                        f"`python -c 'import email, sqlite3'` {baseline * 1000:.0f} ms",
                        f"{ours * 1000:.0f} ms, {memory} (no `serve`: {alone * 1000:.0f} ms)",
                        f"{ratio:.1f}x", f"<= {GOAL_RATIO:.2f}x (150 ms where the baseline is 24 ms)",
                        ratio <= GOAL_RATIO)
