"""`serve` as a process: SQLite is for one process, so a second `serve` on the same file refuses to start
and names the first; the lock goes with the process, so after a crash the next `serve` starts; and a
routing or services process that ends is started again while SMTP goes on."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.inbound import routed
from tests.helpers.messages import reply
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


def _pid_of(web: Served, words: str) -> int:
    """The process `serve` named in its last log line with `words` (the pages answer a moment before
    `serve` has heard they are ready and logged it)."""
    lines = web.wait_for(lambda: [line for line in web.output().splitlines() if words in line], what=words)
    return int(re.search(r"process (\d+)", lines[-1]).group(1))


def test_a_routing_process_that_ends_is_started_again_and_routes(web: Served) -> None:
    os.kill(_pid_of(web, "routing in process"), signal.SIGKILL)
    web.wait_for(lambda: "the routing process ended" in web.output(), timeout=20, what="serve to notice")
    with smtplib.SMTP("127.0.0.1", web.smtp_port, timeout=10) as smtp:
        smtp.sendmail("cand@example.org", ["jobs+1042@example.test"],
                      reply("after@example.org", "cand@example.org", "jobs+1042@example.test").encode())
    assert routed(web.bridge, 1, timeout=20)[0]["route"] == "employee"


def test_a_services_process_that_ends_is_started_again(web: Served) -> None:
    os.kill(_pid_of(web, "web pages and"), signal.SIGKILL)
    web.wait_for(lambda: "the web pages and worker process ended" in web.output(), timeout=20, what="serve to notice")

    def answers() -> bool:
        try:
            return httpx.get(f"{web.base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    web.wait_for(answers, timeout=30, what="the pages to answer again")
    assert web.proc.poll() is None  # serve itself never stopped: SMTP went on throughout
