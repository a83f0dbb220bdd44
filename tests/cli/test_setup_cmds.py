"""Set-up through the CLI: bad input is refused with a clear error and changes nothing; secrets stay secret."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from models import db
from models.search_index import include_object
from tests.helpers.bridge import Bridge, make_bridge
from tests.helpers.setup_steps import add_alias, send


def test_migrations_match_the_models(bridge: Bridge) -> None:
    """One source of truth: the migrated schema is exactly what the models declare (besides the search index,
    which the database keeps itself: models/search_index.py)."""
    with create_engine(bridge.url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_head_constant_is_the_newest_migration(lite_bridge: Bridge) -> None:
    from alembic.script import ScriptDirectory

    from models.db import HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config(lite_bridge.engine())).get_current_head() == HEAD


def test_init_is_idempotent_and_commands_need_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = make_bridge(f"sqlite:///{tmp_path}/new.db", tmp_path, monkeypatch)
    result = b.run("employee", "list", ok=False)
    assert result.exit_code == 1 and "replybridge init" in result.stderr
    b.run("init")
    b.run("init", "--reply-address", "jobs-{number}@example.test")
    assert b.json("settings", "show")["accepted_domains"] == ["example.test"]
    db.shared_engine.cache_clear()


def test_the_sqlite_database_and_its_journal_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every candidate's mail is in the file: 0600 like the key, its -wal and -shm too, whatever the umask."""
    old_umask = os.umask(0o022)
    try:
        _private_database(tmp_path, monkeypatch)
    finally:
        os.umask(old_umask)


def _private_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_file = tmp_path / "rb.db"
    b = make_bridge(f"sqlite:///{db_file}", tmp_path, monkeypatch)
    b.run("init")
    b.run("employee", "add", "--number", "7", "--name", "Bo", "--email", "bo@example.test")
    with b.engine().connect():  # an open connection keeps the WAL files in place
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("rb.db*")}
    assert set(modes) == {"rb.db", "rb.db-wal", "rb.db-shm"} and set(modes.values()) == {0o600}, modes
    b.engine().dispose()
    db_file.chmod(0o644)  # a file made before this release is closed to others on the next start
    db.shared_engine.cache_clear()
    b.run("employee", "list")
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    db.shared_engine.cache_clear()


def test_key_file_is_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = make_bridge(f"sqlite:///{tmp_path}/db/rb.db", tmp_path, monkeypatch)
    monkeypatch.delenv("REPLYBRIDGE_SECRET_KEY")
    (tmp_path / "db").mkdir()
    b.run("init")
    key = tmp_path / "db" / "replybridge.key"
    assert key.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("PW", "pw-value-1")
    b.run("smtp", "add", "x", "--host", "h.example.test", "--port", "587", "--security", "starttls",
          "--username", "u", "--password-env", "PW")
    key.unlink()
    result = b.run("test", "smtp", "x", ok=False)
    assert result.exit_code == 1 and "REPLYBRIDGE_SECRET_KEY" in result.output
    db.shared_engine.cache_clear()


@pytest.mark.parametrize("args, words", [
    (["employee", "add", "--number", "1042", "--name", "Dup", "--email", "d@example.test"], "exists already"),
    (["employee", "add", "--number", "7", "--name", "X", "--email", "not-an-address"], "not an e-mail address"),
    (["smtp", "add", "a", "--host", "h.test", "--port", "70000", "--security", "ssl"], "out of range"),
    (["smtp", "add", "a", "--host", "h.test:25", "--port", "587", "--security", "ssl"], "--port"),
    (["smtp", "add", "a", "--host", "h.test", "--port", "587", "--security", "tls"], "'tls' is not one of"),
    (["smtp", "add", "a", "--host", "h.test", "--port", "587", "--security", "none", "--password-env", "PW"],
     "needs a --username"),
    (["smtp", "add", "a", "--host", "h.test", "--port", "587", "--security", "none", "--username", "u",
      "--password-env", "UNSET_VAR"], "UNSET_VAR is not set"),
    (["imap", "add", "i", "--host", "h.test", "--port", "993", "--security", "ssl", "--username", "u"],
     "a password is needed"),
    (["imap", "add", "i", "--host", "h.test", "--port", "993", "--security", "ssl", "--username", "u",
      "--password-env", "PW", "--poll-folder", "Sent Items"], "is a Sent folder"),
    (["imap", "add", "i", "--host", "h.test", "--port", "993", "--security", "ssl", "--username", "u",
      "--password-env", "PW", "--poll-folder", "INBOX", "--poll-after", "delete"], "move:FOLDER"),
    (["alias", "add", "--employee", "99", "--description", "d", "--display-name", "n", "--from", "a@example.test"],
     "no employee number 99"),
    (["alias", "add", "--employee", "1042", "--description", "d", "--display-name", "n", "--from", "a@example.test",
      "--smtp", "missing"], "no SMTP account named 'missing'"),
    (["settings", "set", "reply_address", "jobs@example.test"], "{number}"),
    (["settings", "set", "sender_mode", "bcc"], "sender_mode"),
    (["settings", "set", "nonsense", "1"], "unknown setting"),
    (["settings", "set", "portal_url", "ftp://x.test"], "not an http(s) URL"),
])
def test_bad_input_is_refused_and_changes_nothing(lite_bridge: Bridge, monkeypatch: pytest.MonkeyPatch,
                                                  args: list[str], words: str) -> None:
    monkeypatch.setenv("PW", "pw")
    before = [lite_bridge.json(*cmd) for cmd in (("employee", "list"), ("smtp", "list"), ("alias", "list"),
                                                  ("settings", "show"))]
    result = lite_bridge.run(*args, ok=False)
    assert result.exit_code != 0
    assert words in result.output, result.output
    assert "Traceback" not in result.output
    after = [lite_bridge.json(*cmd) for cmd in (("employee", "list"), ("smtp", "list"), ("alias", "list"),
                                                 ("settings", "show"))]
    assert before == after


def test_duplicate_alias_description_is_refused(lite_bridge: Bridge) -> None:
    add_alias(lite_bridge, smtp=None)
    result = lite_bridge.run("alias", "add", "--employee", "1042", "--description", "ANA JOBS", "--display-name",
                             "x", "--from", "x@example.test", ok=False)
    assert result.exit_code == 1 and "exists already" in result.stderr


def test_inactive_employee_cannot_send(lite_bridge: Bridge) -> None:
    lite_bridge.run("employee", "add", "--number", "3055", "--name", "Cy", "--email", "cy@example.test", "--inactive")
    result = lite_bridge.run("send", "--employee", "3055", "--to", "c@example.org", "--subject", "s", "--body", "b",
                             ok=False)
    assert result.exit_code == 1 and "inactive" in result.stderr


def test_secrets_never_in_output_logs_or_database(lite_bridge: Bridge, smtp_peer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Very-Secret-Pa55!"
    peer = smtp_peer("auth_535")
    outputs = [lite_bridge.run("smtp", "add", "main", "--host", peer.host, "--port", str(peer.port), "--security",
                               "none", "--username", "ana", "--password-stdin", stdin=secret + "\n").output]
    add_alias(lite_bridge)
    send(lite_bridge)
    outputs.append(lite_bridge.run("worker", "--once").output)
    outputs += [lite_bridge.run(*cmd).output for cmd in (("log", "--json"), ("smtp", "list", "--json"),
                                                         ("alias", "list"), ("log", "--id", "1"))]
    outputs.append(lite_bridge.run("test", "smtp", "main", ok=False).output)
    assert "535" in "".join(outputs)
    for text in [*outputs, caplog.text]:
        assert secret not in text
    for path in tmp_path.glob("rb.db*"):
        assert secret.encode() not in path.read_bytes()
