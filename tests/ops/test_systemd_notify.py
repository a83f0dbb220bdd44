"""`serve` under systemd's notify protocol: READY=1 only once the SMTP port greets and the pages answer,
watchdog pings, STOPPING=1 on SIGTERM, then a clean exit 0 with its children gone and the mail it took kept.

systemd itself is not needed: the test binds the datagram socket systemd would, names it in NOTIFY_SOCKET
and reads what `serve` says, as systemd does.
"""

from __future__ import annotations

import os
import secrets
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from bridge.ops import systemd_notify
from models import InboundMessage
from models.db import session_scope
from tests.helpers.bridge import Bridge
from tests.helpers.messages import reply
from tests.servers.web import free_port


class Notifications:
    """The datagram socket systemd listens on, and what arrived on it (each with the time it arrived)."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.received: list[tuple[float, str]] = []

    def wait_for(self, line: str, timeout: float) -> float:
        """Read datagrams until one holds `line`; when it arrived."""
        for at, message in self.received:
            if line in message.splitlines():
                return at
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            self.received.append((time.monotonic(), data.decode()))
            if line in data.decode().splitlines():
                return self.received[-1][0]
        raise AssertionError(f"no {line!r} within {timeout} s; received {[m for _, m in self.received]}")

    def lines(self, prefix: str) -> list[str]:
        return [line for _, message in self.received for line in message.splitlines() if line.startswith(prefix)]


@pytest.fixture
def notifications() -> Iterator[tuple[Notifications, str]]:
    """A socket in the abstract namespace (as systemd's own is), and its NOTIFY_SOCKET value."""
    name = f"replybridge-test-{secrets.token_hex(6)}"
    listener = Notifications("\0" + name)
    yield listener, "@" + name
    listener.sock.close()


def test_nothing_is_sent_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd_notify.ready("up") is False


def test_a_path_socket_gets_the_lines_in_one_datagram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    listener = Notifications(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        assert systemd_notify.stopping("stopping:\nnow") is True
        listener.wait_for("STOPPING=1", timeout=2)
        assert listener.received[0][1] == "STOPPING=1\nSTATUS=stopping: now"  # a line break would end the value
    finally:
        listener.sock.close()


def test_a_socket_nobody_listens_on_costs_a_warning_not_the_service(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert systemd_notify.watchdog() is False


def test_the_watchdog_interval_is_half_of_watchdogsec_and_only_for_its_process(monkeypatch: pytest.MonkeyPatch
                                                                               ) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd_notify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "90000000")
    assert systemd_notify.watchdog_interval() == 45.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd_notify.watchdog_interval() == 45.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # systemd meant another process
    assert systemd_notify.watchdog_interval() is None


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines (from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _stored(b: Bridge, message_id: str) -> bool:
    with session_scope(b.engine()) as s:
        return s.exec(select(InboundMessage.id).where(InboundMessage.message_id == message_id)).first() is not None


def test_serve_is_ready_only_when_it_answers_and_stops_cleanly_on_sigterm(
        bridge: Bridge, tmp_path: Path, notifications: tuple[Notifications, str]) -> None:
    listener, address = notifications
    smtp_port, web_port = free_port(), free_port()
    env = dict(os.environ, REPLYBRIDGE_SMTP_PORT=str(smtp_port), REPLYBRIDGE_WEB_PORT=str(web_port),
               REPLYBRIDGE_WORKER_INTERVAL="0.3", NOTIFY_SOCKET=address, WATCHDOG_USEC="1000000")
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "serve.log"
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from bridge.cli import main; main()", "serve"], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready = listener.wait_for("READY=1", timeout=60) - started
        # at once, without waiting: had READY=1 come early, these would find nothing listening
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as smtp:
            assert smtp.noop()[0] == 250  # smtplib read the 220 greeting on connecting
            raw = reply("last@cand.example.org", "cand@example.org", "jobs+1042@example.test").encode()
            smtp.sendmail("cand@example.org", ["jobs+1042@example.test"], raw)
        assert httpx.get(f"http://127.0.0.1:{web_port}/healthz", timeout=5).status_code == 200
        statuses = listener.lines("STATUS=")
        assert statuses[0].startswith("STATUS=starting") and f"on 127.0.0.1:{smtp_port}" in statuses[1], statuses
        for _ in range(3):  # again and again (every half of WATCHDOG_USEC)
            listener.wait_for("WATCHDOG=1", timeout=5)
            listener.received.clear()
        children = _children(proc.pid)
        # the routing and services processes; multiprocessing's resource tracker ends by itself after serve
        workers = [pid for pid, command in children.items() if "spawn_main" in command]
        assert len(workers) == 2, children

        os.kill(proc.pid, signal.SIGTERM)  # serve alone, as systemd's KillMode=mixed does
        term = time.monotonic()
        listener.wait_for("STOPPING=1", timeout=5)
        assert proc.wait(timeout=60) == 0, log.read_text()
        stopped = time.monotonic() - term
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert [pid for pid in workers if _running(pid)] == []  # serve stopped them before it ended
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)  # the tracker sees its pipe close once serve is gone
    assert [command for pid, command in children.items() if _running(pid)] == []
    assert _stored(bridge, "<last@cand.example.org>")  # answered 250 just before SIGTERM: kept
    print(f"\nREADY=1 {ready:.1f} s after start; exit 0 {stopped:.1f} s after SIGTERM")
