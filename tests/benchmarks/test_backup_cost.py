"""What `replybridge backup` costs the SMTP receiver of a running `serve` (pytest -m benchmark).

A database of about 200 MB (stored mail, already routed) behind `serve`; a client sends replies one after
another and times each answer (the 250, which waits for the commit). Baseline: the same client for the same
time with no backup running. Then the same with `replybridge backup` copying the database as its own
process. The copy reads one snapshot, so the receiver's commits never wait for it; what is left is the
disk and the processor it shares. Goal: the 95th percentile of the 250 at most 3x the baseline's.
"""

from __future__ import annotations

import datetime as dt
import os
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.benchmarks import table
from tests.helpers.bridge import Bridge
from tests.servers.web import start_serve, stop_serve

FILL_MESSAGES, FILL_BYTES = 2_000, 100_000  # about 200 MB of stored mail
GOAL_RATIO = 3.0


def _fill(database: Path) -> None:
    """Stored, routed and dismissed mail, written straight into the table (nothing left for routing to do)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    conn = sqlite3.connect(database)
    conn.executemany(
        "INSERT INTO inbound_message (dedup_key, raw, size, source, envelope_to, received_at, kind, route, rule, "
        "reason, triage, routed_at, delivery, delivery_attempts, route_attempts, flagged) VALUES "
        "(?, ?, ?, 'smtp', '[]', ?, 'reply', 'unassigned', 'none', 'filler', 'dismissed', ?, 'none', 0, 0, 0)",
        [(f"<fill-{n}@example.org>", os.urandom(FILL_BYTES), FILL_BYTES, now, now) for n in range(FILL_MESSAGES)])
    conn.commit()
    conn.close()


class _Timer:
    """Sends replies one after another on one connection, timing each 250, while `on` is set."""

    def __init__(self, port: int) -> None:
        self.port, self.times, self.error = port, [], None
        self.on, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
                while not self.stop.is_set():
                    n += 1
                    message = (f"From: c{n}@example.org\r\nTo: jobs+1042@example.test\r\nSubject: Re: {n}\r\n"
                               f"Message-ID: <timed-{n}@example.org>\r\n\r\nMonday works.\r\n")
                    started = time.perf_counter()
                    smtp.sendmail(f"c{n}@example.org", ["jobs+1042@example.test"], message)
                    if self.on.is_set():
                        self.times.append((time.perf_counter() - started) * 1000)
        except Exception as err:  # noqa: BLE001 - handed to the test
            self.error = err

    def measure(self, seconds: float | None = None, during: subprocess.Popen | None = None) -> list[float]:
        self.times = []
        self.on.set()
        if during is not None:
            during.wait()
        else:
            time.sleep(seconds)
        self.on.clear()
        assert self.error is None, self.error
        return self.times


def _p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1]


@pytest.mark.benchmark
def test_a_backup_barely_slows_the_receiver(lite_bridge: Bridge, tmp_path: Path) -> None:
    lite_bridge.run("employee", "set-delivery", "1042", "none")
    _fill(Path(lite_bridge.url.removeprefix("sqlite:///")))
    served = start_serve(lite_bridge, tmp_path)
    try:
        timer = _Timer(served.smtp_port)
        timer.measure(2)  # warm up
        started = time.perf_counter()
        backup = subprocess.Popen([sys.executable, "-c", "from bridge.cli import main; main()", "backup",
                                   str(tmp_path / "backup.db")], cwd=tmp_path, env=dict(os.environ),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        during = timer.measure(during=backup)
        took = time.perf_counter() - started
        alone = timer.measure(max(took, 2))
        timer.stop.set()
        timer.thread.join(30)
    finally:
        stop_serve(served)
    assert backup.returncode == 0, backup.stderr.read()
    size_mb = (tmp_path / "backup.db").stat().st_size / 1e6
    base, ours = _p95(alone), _p95(during)
    ratio = ours / base
    print(f"\nbackup of {size_mb:.0f} MB in {took:.1f} s under load; 250 answered: alone p50 "
          f"{statistics.median(alone):.1f} ms, p95 {base:.1f} ms, max {max(alone):.1f} ms ({len(alone)} messages); "
          f"during the backup p50 {statistics.median(during):.1f} ms, p95 {ours:.1f} ms, max {max(during):.1f} ms "
          f"({len(during)} messages)")
    assert table.record(f"the SMTP receiver's 250 while `replybridge backup` copies {size_mb:.0f} MB "
                        f"(in {took:.1f} s)",
                        f"no backup: p95 {base:.1f} ms", f"p95 {ours:.1f} ms, max {max(during):.1f} ms",
                        f"{ratio:.1f}x", f"<= {GOAL_RATIO:.0f}x", ratio <= GOAL_RATIO)
