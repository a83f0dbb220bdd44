"""`serve` as a process: SQLite is for one process, so a second `serve` on the same file refuses to start
and names the first; the lock goes with the process, so after a crash the next `serve` starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.servers.web import Served, free_port, start_serve, stop_serve


def _second_serve(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, REPLYBRIDGE_SMTP_PORT=str(free_port()), REPLYBRIDGE_WEB_PORT=str(free_port()))
    return subprocess.run([sys.executable, "-c", "from bridge.cli import main; main()", "serve"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_second_serve_on_one_sqlite_file_refuses_to_start(web: Served, tmp_path: Path) -> None:
    second = _second_serve(tmp_path)
    assert second.returncode == 1, second.stderr
    assert f"another `replybridge serve` (pid {web.proc.pid}" in second.stderr and "PostgreSQL" in second.stderr
    assert httpx.get(f"{web.base_url}/healthz", timeout=5).status_code == 200  # the first one serves on


def test_after_a_crash_the_next_serve_starts(web: Served, tmp_path: Path) -> None:
    os.killpg(web.proc.pid, signal.SIGKILL)
    web.proc.wait(10)
    again = start_serve(web.bridge, tmp_path)
    try:
        assert httpx.get(f"{again.base_url}/healthz", timeout=5).status_code == 200
    finally:
        stop_serve(again)
