"""The faults a mail service meets, thrown at `serve` as a process: the database restarted under SMTP load,
the disk full under SQLite, the IMAP server restarted while a watcher waits in IDLE.

Each is what an operator sees happen, with what the bridge must do: answer 451 while it cannot store (a
sending MTA retries), never half-store, and recover by itself once the fault is gone.
"""

from __future__ import annotations

import os
import smtplib
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from models import InboundMessage
from models.db import session_scope
from tests.helpers.bridge import Bridge, make_bridge
from tests.helpers.inbound import deliver
from tests.helpers.messages import reply
from tests.helpers.setup_steps import add_poller
from tests.servers import postgres
from tests.servers.dovecot import DOVECOT_BINARY, start_dovecot
from tests.servers.web import start_serve, stop_serve

RECOVERY_GOAL_S = 60.0


def _initialised(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bridge:
    b = make_bridge(url, tmp_path, monkeypatch)
    b.run("init", "--reply-address", "jobs+{number}@example.test", "--domain", "example.test")
    b.run("employee", "add", "--number", "1042", "--name", "Ana Ruiz", "--email", "ana@example.test",
          "--delivery", "none")
    return b


@dataclass
class Answer:
    at: float
    code: int  # the SMTP answer to DATA (or the first refusal); 0: no connection


@dataclass(eq=False)
class Mta(threading.Thread):
    """What a sending MTA does: each message until it gets a 250, trying again half a second after a 4xx."""

    port: int
    count: int
    body: str = "Thank you, Monday works.\r\n"
    pause: float = 0.02
    answers: list[Answer] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    refused_for_good: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def send(self, n: int) -> int:
        raw = reply(f"load-{n}@cand.example.org", f"Cand {n} <cand{n}@example.org>", "jobs+1042@example.test",
                    body=self.body)
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                client.sendmail(f"cand{n}@example.org", ["jobs+1042@example.test"], raw.encode())
            return 250
        except smtplib.SMTPRecipientsRefused as err:
            return next(iter(err.recipients.values()))[0]
        except smtplib.SMTPResponseException as err:
            return err.smtp_code
        except (OSError, smtplib.SMTPException):
            return 0

    def run(self) -> None:
        for n in range(self.count):
            mid = f"<load-{n}@cand.example.org>"
            for _attempt in range(600):
                code = self.send(n)
                self.answers.append(Answer(time.monotonic(), code))
                if code == 250:
                    self.accepted.append(mid)
                    break
                if code >= 500:
                    self.refused_for_good.append((mid, code))
                    break
                time.sleep(0.5)
            time.sleep(self.pause)

    def wait_accepted(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.accepted) >= count, f"{len(self.accepted)} of {count} accepted in {timeout} s"


def _stored(b: Bridge) -> Counter[str]:
    with session_scope(b.engine()) as s:
        return Counter(s.exec(select(InboundMessage.message_id)).all())


def _routed(b: Bridge) -> int:
    with session_scope(b.engine()) as s:
        return s.exec(select(func.count()).select_from(InboundMessage)
                      .where(InboundMessage.routed_at.is_not(None))).one()


@pytest.mark.postgres
def test_postgresql_restarted_under_smtp_load(private_postgres: postgres.Postgres, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """451 while the database is down, 250 again by itself once it is back; every message stored once."""
    b = _initialised(private_postgres.url, tmp_path, monkeypatch)
    served = start_serve(b, tmp_path)
    mta = Mta(served.smtp_port, count=150)
    try:
        mta.start()
        mta.wait_accepted(40, 30)
        private_postgres.stop("fast")
        down = time.monotonic() + 0.5  # a 250 for a commit made just before the server stopped may still arrive
        time.sleep(5)
        up = time.monotonic()
        private_postgres.start()
        mta.join(120)
        assert not mta.is_alive() and len(mta.accepted) == 150 and mta.refused_for_good == []
        during = [a.code for a in mta.answers if down < a.at < up]
        assert during and set(during) <= {451, 0} and 451 in during, Counter(during)
        recovered = min(a.at for a in mta.answers if a.at > up and a.code == 250) - up
        assert recovered < RECOVERY_GOAL_S
        served.wait_for(lambda: _routed(b) == 150, timeout=RECOVERY_GOAL_S, what="all 150 routed")
        assert served.proc.poll() is None
    finally:
        stop_serve(served)
    stored = _stored(b)
    assert sorted(stored) == sorted(mta.accepted) and set(stored.values()) == {1}
    print(f"\nPostgreSQL down 5 s under load: {Counter(during)} answered meanwhile; 250 again {recovered:.1f} s "
          "after it was back; 150 of 150 stored once")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB file system of its own (tmpfs), so filling it fills nothing else."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """Fill the disk up to `leave` bytes free."""
    filler = disk / "filler"
    with filler.open("ab") as f:
        while True:
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            if free <= leave:
                return filler
            f.write(b"\0" * min(free - leave, 1 << 20))
            f.flush()


def test_disk_full_under_sqlite_answers_451_and_half_stores_nothing(small_disk: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    b = _initialised(f"sqlite:///{small_disk}/rb.db", tmp_path, monkeypatch)
    served = start_serve(b, tmp_path)
    mta = Mta(served.smtp_port, count=1, body="x" * 76 + "\r\n")
    try:
        assert mta.send(0) == 250
        filler = _fill(small_disk, leave=256 * 1024)
        big = "y" * 76 + "\r\n"
        codes = []
        for n in range(1, 12):  # 100 KiB each: the disk is full after the second or third
            mta.body = big * 1300
            codes.append(mta.send(n))
        assert 451 in codes and all(code in (250, 451) for code in codes), codes
        filler.unlink()  # the operator makes room
        later = [mta.send(n) for n in range(1, 12) if codes[n - 1] == 451]
        assert set(later) == {250}
        served.wait_for(lambda: _routed(b) == 12, timeout=RECOVERY_GOAL_S, what="all 12 routed")
        assert served.proc.poll() is None
    finally:
        stop_serve(served)
    stored = _stored(b)
    assert sorted(stored) == sorted(f"<load-{n}@cand.example.org>" for n in range(12)) and set(stored.values()) == {1}
    with session_scope(b.engine()) as s:  # every stored message whole: its bytes end as they were sent
        assert all(raw.endswith(b"works.\r\n") or raw.rstrip().endswith(b"x" * 76) or raw.rstrip().endswith(b"y" * 76)
                   for raw in s.exec(select(InboundMessage.raw)).all())
    with sqlite3.connect(small_disk / "rb.db") as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    print(f"\ndisk full under SQLite: answers {codes}; all 250 after room was made; integrity ok")


@pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")
def test_dovecot_restarted_while_the_watcher_idles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher reconnects (backoff from 1 s) and catches up: mail delivered after the restart is stored
    within 60 s, none twice."""
    root = tmp_path / "imap"
    server = start_dovecot(root)
    b = _initialised(f"sqlite:///{tmp_path}/rb.db", tmp_path, monkeypatch)
    add_poller(b, server, monkeypatch)
    served = start_serve(b, tmp_path)
    try:
        deliver(server, [reply("before@cand.example.org", "a@example.org", "jobs+1042@example.test").encode()])
        served.wait_for(lambda: _routed(b) == 1, timeout=20, what="the first message")
        time.sleep(1)  # the watcher is back in IDLE
        ports = (server.port, server.ssl_port)
        server.stop()
        time.sleep(3)  # down for a while: the watcher's reconnects are refused
        server = start_dovecot(root, ports=ports)
        restarted = time.monotonic()
        deliver(server, [reply(f"after-{n}@cand.example.org", "a@example.org", "jobs+1042@example.test").encode()
                         for n in range(3)])
        served.wait_for(lambda: _routed(b) == 4, timeout=RECOVERY_GOAL_S, what="the mail after the restart")
        caught_up = time.monotonic() - restarted
    finally:
        stop_serve(served)
        server.stop()
    assert set(_stored(b).values()) == {1}
    print(f"\nDovecot restarted under an idling watcher: caught up {caught_up:.1f} s after the restart")
