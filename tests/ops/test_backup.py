"""`replybridge backup` and `restore`: a backup taken while `serve` receives mail, restored into a fresh file and
compared with the original message by message; the snapshot that keeps a copy in steps consistent; and every
refusal, each shown to change nothing."""

from __future__ import annotations

import hashlib
import json
import os
import smtplib
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command

from bridge.cli import backup_cmds
from bridge.ops import backup
from bridge.ops.serve import sole_serve_of_sqlite
from models.db import HEAD, alembic_config, make_engine
from tests.helpers.bridge import POSTGRES_URL, Bridge
from tests.servers.web import start_serve, stop_serve

# what a message is when stored, before routing reads it; the rest is the routing's, filled once
RECEIPT = ("id", "dedup_key", "message_id", "raw", "size", "source", "envelope_from", "envelope_to", "received_at")
FILLED_AFTER_ROUTING = ("reply_text", "attachment_names")  # read from the bodies once nothing waits to be routed


def _file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _rows(path: Path, table: str) -> dict[int, dict[str, object]]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return {r["id"]: dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")}  # noqa: S608
    finally:
        conn.close()


def _count(path: Path) -> int:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM inbound_message").fetchone()[0]
    finally:
        conn.close()


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


class _Sender:
    """Sends replies to the receiver, one after another on one connection, until stopped."""

    def __init__(self, port: int) -> None:
        self.port, self.sent, self.error = port, 0, None
        self.stop = threading.Event()
        self.progress = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="backup-load", daemon=True)

    def _run(self) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=15) as smtp:
                while not self.stop.is_set():
                    n = self.sent + 1
                    body = f"Thank you, Monday works. Reply {n}.\r\n" * 40
                    smtp.sendmail(f"cand{n}@example.org", ["jobs+1042@example.test"],
                                  f"From: Cand {n} <cand{n}@example.org>\r\nTo: jobs+1042@example.test\r\n"
                                  f"Subject: Re: Interview {n}\r\nMessage-ID: <load-{n}@example.org>\r\n\r\n{body}")
                    with self.progress:
                        self.sent = n
                        self.progress.notify_all()
        except Exception as err:  # noqa: BLE001 - handed to the test, which fails with it
            self.error = err
            with self.progress:
                self.progress.notify_all()

    def wait_for(self, count: int) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.sent >= count or self.error, timeout=30), "sending stalled"
        assert self.error is None, self.error

    @contextmanager
    def running(self) -> Iterator[_Sender]:
        self.thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            self.thread.join(30)
        assert self.error is None, self.error


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command as its own process, as an admin or a timer runs it beside `serve`."""
    return subprocess.run([sys.executable, "-c", "from bridge.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_a_backup_taken_under_load_restores_every_message(lite_bridge: Bridge, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    lite_bridge.run("employee", "set-delivery", "1042", "none")  # the rows change only by routing meanwhile
    original, copy = _file(lite_bridge.url), tmp_path / "backups" / "rb-backup.db"
    copy.parent.mkdir(mode=0o700)
    served = start_serve(lite_bridge, tmp_path)
    try:
        with _Sender(served.smtp_port).running() as sender:
            sender.wait_for(30)
            stored_before = _count(original)
            sent_before = sender.sent
            made = _cli("backup", str(copy), "--json", cwd=tmp_path)
            sent_during = sender.sent - sent_before
            stored_after = _count(original)
            sender.wait_for(sender.sent + 5)  # and still receiving after it
        refused = lite_bridge.run("restore", str(copy), "--force", ok=False)
    finally:
        stop_serve(served)
    assert made.returncode == 0, made.stderr
    assert sent_during > 0, "nothing was received while the backup ran"
    assert refused.exit_code == 1 and "stop it first" in refused.stderr and "replybridge serve" in refused.stderr
    written = json.loads(made.stdout)
    assert written["revision"] == HEAD and written["secret_key_in_backup"] is False
    assert stored_before <= written["messages"] <= stored_after, (stored_before, written, stored_after)
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name]  # no partial file left beside it

    fresh = f"sqlite:///{tmp_path}/restored/rb.db"
    Path(fresh.removeprefix("sqlite:///")).parent.mkdir()
    with monkeypatch.context() as m:
        m.setenv("REPLYBRIDGE_DATABASE_URL", fresh)
        restored = lite_bridge.json("restore", str(copy))
        lite_bridge.engine().dispose()
    assert restored["messages"] == written["messages"] and restored["replaced"] is None
    now, then = _rows(_file(fresh), "inbound_message"), _rows(original, "inbound_message")
    assert 0 < len(now) <= len(then)
    for message_id, row in now.items():
        _same_message(row, then[message_id])
    assert _rows(_file(fresh), "employee") == _rows(original, "employee")
    assert _integrity(_file(fresh)) == "ok"


def _same_message(restored: dict[str, object], original: dict[str, object]) -> None:
    """Equal in every column, but for what routing wrote after the snapshot into the original's row."""
    assert {c: restored[c] for c in RECEIPT} == {c: original[c] for c in RECEIPT}
    if restored["routed_at"] is None:  # stored, not yet routed when the copy was made
        assert restored["route"] is None and restored["employee_id"] is None
        return
    later = {c for c in FILLED_AFTER_ROUTING if restored[c] is None}
    assert {c: v for c, v in restored.items() if c not in later} == {c: v for c, v in original.items()
                                                                     if c not in later}


def test_the_copy_reads_one_snapshot_while_writers_commit_between_its_steps(lite_bridge: Bridge, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the snapshot, each write between two steps would start the copy again (it would never end under
    steady mail); with it, the copy is the database as it was at its first step, and no writer waits for it."""
    database = _file(lite_bridge.url)
    writer = sqlite3.connect(database, timeout=0, isolation_level=None)  # a writer that never waits
    writer.execute("PRAGMA synchronous=OFF")  # (no fsync per row: the test is about locks, not the disk)
    writer.execute("CREATE TABLE filler (x BLOB)")
    writer.executemany("INSERT INTO filler VALUES (?)", [(os.urandom(3000),) for _ in range(300)])
    monkeypatch.setattr(backup, "PAGES", 16)
    steps: list[int] = []

    def write_between_steps(done: int, total: int) -> None:
        steps.append(done)
        writer.execute("INSERT INTO filler VALUES (?)", (os.urandom(3000),))  # commits at once, never blocked

    made = backup.take(tmp_path / "copy.db", write_between_steps)
    assert len(steps) > 10 and steps == sorted(steps)  # many steps, none started again
    copied = sqlite3.connect(tmp_path / "copy.db")
    assert copied.execute("SELECT count(*) FROM filler").fetchone()[0] == 300  # the snapshot's rows, not later ones
    assert copied.execute("PRAGMA integrity_check").fetchone()[0] == "ok" and made.revision == HEAD
    assert writer.execute("SELECT count(*) FROM filler").fetchone()[0] == 300 + len(steps)
    copied.close()
    writer.close()


def test_a_failed_copy_leaves_no_file(lite_bridge: Bridge, tmp_path: Path) -> None:
    def fail_midway(done: int, total: int) -> None:
        raise OSError("No space left on device")

    target = tmp_path / "out" / "copy.db"
    target.parent.mkdir()
    with pytest.raises(OSError, match="No space left"):
        backup.take(target, fail_midway)
    assert list(target.parent.iterdir()) == []


def test_backup_never_replaces_a_file_and_shows_progress_of_a_large_copy(lite_bridge: Bridge, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    existing = tmp_path / "kept.db"
    existing.write_bytes(b"an earlier backup")
    result = lite_bridge.run("backup", str(existing), ok=False)
    assert result.exit_code == 1 and "kept.db exists: a backup never replaces a file" in result.stderr
    assert existing.read_bytes() == b"an earlier backup"
    missing = lite_bridge.run("backup", str(tmp_path / "nowhere" / "b.db"), ok=False)
    assert missing.exit_code == 1 and "does not exist" in missing.stderr

    monkeypatch.setattr(backup_cmds, "LARGE_PAGES", 1)
    monkeypatch.setattr(backup, "PAGES", 8)
    made = lite_bridge.run("backup", str(tmp_path / "new.db"))
    assert "copied: " in made.stderr and "% (" in made.stderr  # progress on stderr
    assert "Backup written: " in made.stdout and f"schema revision {HEAD}" in made.stdout
    assert "The secret key is not in the backup: it is held by the setting REPLYBRIDGE_SECRET_KEY" in made.stdout


def test_postgresql_points_to_its_own_tools(lite_bridge: Bridge, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setenv("REPLYBRIDGE_DATABASE_URL", POSTGRES_URL)
        made = lite_bridge.run("backup", str(tmp_path / "b.db"), ok=False)
        restored = lite_bridge.run("restore", str(tmp_path / "b.db"), ok=False)
    assert made.exit_code == 1 and "use `pg_dump -Fc` instead" in made.stderr and "Operations" in made.stderr
    assert restored.exit_code == 1 and "`pg_restore`" in restored.stderr
    assert not (tmp_path / "b.db").exists()


def _state(b: Bridge) -> tuple[str, list[str]]:
    """The database file's bytes and its folder's names, with the engine's connections closed (the lock file that
    `serve` and a restore hold while they run, empty of data, aside)."""
    b.engine().dispose()
    database = _file(b.url)
    names = sorted(p.name for p in database.parent.iterdir() if not p.name.endswith(".serve-lock"))
    return hashlib.sha256(database.read_bytes()).hexdigest(), names


def _not_ours(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()


def _at_revision(revision: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
        conn.commit()
        conn.close()
    return make


def _no_tables(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 1")  # a SQLite file with a header and nothing else
    conn.close()


@pytest.mark.parametrize("make, words", [
    (None, "does not exist"),
    (lambda p: p.mkdir(), "is not a file"),
    (lambda p: p.write_text("From: someone\n\nnot a database\n"), "is not a SQLite database"),
    (_not_ours, "a SQLite database but not replybridge's"),
    (lambda p: p.write_bytes(b""), "is not a SQLite database"),
    (_no_tables, "it holds no schema revision"),
    (_at_revision("9999"), "newer than this version's"),
    (_at_revision("1f2e3d4c5b6a"), "is not one of replybridge's"),
    ("truncated", "damaged"),
], ids=["missing", "folder", "text", "not-ours", "empty", "no-tables", "newer", "foreign-revision", "truncated"])
def test_bad_input_is_refused_and_changes_nothing(lite_bridge: Bridge, tmp_path: Path, make, words: str) -> None:
    bad = tmp_path / "input" / "backup.db"
    bad.parent.mkdir()
    if make == "truncated":
        whole = tmp_path / "input" / "whole.db"
        lite_bridge.run("backup", str(whole))
        bad.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    elif make is not None:
        make(bad)
    before = _state(lite_bridge)
    result = lite_bridge.run("restore", str(bad), "--force", ok=False)
    assert result.exit_code == 1 and words in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert _state(lite_bridge) == before


def test_a_database_that_holds_data_is_replaced_only_with_force(lite_bridge: Bridge, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "one-employee.db"
    lite_bridge.run("backup", str(copy))
    lite_bridge.run("employee", "add", "--number", "7", "--name", "Later Hire", "--email", "later@example.test")
    lite_bridge.run("ingest", "-", stdin="From: c@example.org\r\nTo: jobs+1042@example.test\r\nSubject: Hi\r\n"
                                         "Message-ID: <after-backup@example.org>\r\n\r\nHello\r\n")
    before = _state(lite_bridge)
    refused = lite_bridge.run("restore", str(copy), ok=False)
    assert refused.exit_code == 1
    assert "holds 1 message, 1 Mail Log entry and 2 employees" in refused.stderr and "--force" in refused.stderr
    itself = lite_bridge.run("restore", str(_file(lite_bridge.url)), "--force", ok=False)
    assert itself.exit_code == 1 and "is the database itself" in itself.stderr
    assert _state(lite_bridge) == before

    done = lite_bridge.run("restore", str(copy), "--force")
    assert "It replaced 1 message, 1 Mail Log entry and 2 employees" in done.stdout
    assert [e["number"] for e in lite_bridge.json("employee", "list")] == [1042]
    assert lite_bridge.json("messages", "list") == []
    database = _file(lite_bridge.url)
    assert not database.with_name(database.name + "-journal").exists()
    assert _integrity(_file(lite_bridge.url)) == "ok"


def test_an_older_backup_is_upgraded(lite_bridge: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    older = f"sqlite:///{tmp_path}/older.db"
    engine = make_engine(older)
    command.upgrade(alembic_config(engine), "0012")
    engine.dispose()
    with monkeypatch.context() as m:
        m.setenv("REPLYBRIDGE_DATABASE_URL", older)
        lite_bridge.run("backup", str(tmp_path / "older-backup.db"))
        m.setenv("REPLYBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path}/new.db")
        out = lite_bridge.run("restore", str(tmp_path / "older-backup.db")).stdout
        assert lite_bridge.json("employee", "list") == []  # an upgraded, usable database
        lite_bridge.engine().dispose()
    assert f"schema revision {HEAD} (upgraded from 0012)" in out
    assert "replybridge doctor" in out


def test_restore_holds_serves_lock(lite_bridge: Bridge, tmp_path: Path) -> None:
    """While a restore runs no `serve` can start: the restore holds the same lock (a second holder is refused)."""
    copy = tmp_path / "b.db"
    lite_bridge.run("backup", str(copy))
    held = sole_serve_of_sqlite(lite_bridge.engine())
    try:
        refused = lite_bridge.run("restore", str(copy), "--force", ok=False)
    finally:
        held.close()
    assert refused.exit_code == 1 and f"pid {os.getpid()}" in refused.stderr
    lite_bridge.run("restore", str(copy), "--force")  # free again
