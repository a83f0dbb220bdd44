"""Counting outside `serve` does nothing and loads nothing; under `serve` a count that fails is said once and
never stops the work it counts (bridge/metrics.py; what serve's processes count is in tests/web/test_metrics.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"} | env
    return subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, env=environment, capture_output=True,
                          text=True, timeout=60)


def test_outside_serve_counting_does_nothing_and_loads_nothing() -> None:
    done = _python("import sys\nfrom bridge import metrics\nmetrics.received('pipe', 'stored')\n"
                   "metrics.send_took(0.2, sent=True)\nprint('prometheus_client' in sys.modules)")
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


def test_a_count_that_fails_is_said_once_and_the_work_goes_on(tmp_path: Path) -> None:
    shared = tmp_path / "counts"
    shared.mkdir()
    done = _python("import shutil, sys\nfrom bridge import metrics\nmetrics.received('smtp', 'stored')\n"
                   f"shutil.rmtree({str(shared)!r})\n"
                   "for _ in range(3):\n    metrics.idling('imap.example', 'INBOX', now=True)\nprint('went on')",
                   PROMETHEUS_MULTIPROC_DIR=str(shared))
    assert (done.returncode, done.stdout.strip()) == (0, "went on"), done.stderr
    assert done.stderr.count("counting idling failed") == 1  # its file could not be made
