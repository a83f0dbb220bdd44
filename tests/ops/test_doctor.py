"""`replybridge doctor`: all ok on a sound set-up (a real SMTP peer, Dovecot, a watcher holding its folder), and
each failure an admin meets shown to give its FAIL or warn line with the fix: a wrong or missing key, loose
permissions, an old schema, dead servers, poll folders nobody watches or that fail."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from alembic import command
from cryptography.fernet import Fernet
from sqlmodel import Session, select

from bridge import crypto
from bridge.inbound.imap import folder_state, one_pass
from bridge.ops.pollers import Pollers
from models import ImapFolderState
from models.db import alembic_config, make_engine
from tests.helpers.bridge import Bridge
from tests.helpers.ports import closed_port
from tests.helpers.setup_steps import PASSWORD, add_account, add_alias, add_imap, add_poller
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot

needs_dovecot = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")


def _doctor(b: Bridge, *args: str) -> tuple[int, list[dict[str, str | None]], str]:
    """Exit code, the findings (--json) and the text lines of one run each. Dovecot sometimes answers a login
    under load with "[UNAVAILABLE] Temporary authentication failure": a person runs the doctor again, and so
    does this."""
    for _ in range(3):
        as_json = b.run("doctor", "--json", *args, ok=False)
        text = b.run("doctor", *args, ok=False)
        if "[UNAVAILABLE]" not in as_json.stdout + text.stdout:
            break
    assert as_json.exit_code == text.exit_code
    return as_json.exit_code, json.loads(as_json.stdout), text.stdout


def _one(findings: list[dict[str, str | None]], check: str) -> dict[str, str | None]:
    [found] = [f for f in findings if f["check"] == check]
    return found


def _key_in_file(monkeypatch: pytest.MonkeyPatch, key: str | None = None) -> Path:
    """The key moved from the environment into the key file beside the database (0600), as `init` makes it."""
    path = crypto.key_file_path()
    path.write_text((key or os.environ["REPLYBRIDGE_SECRET_KEY"]) + "\n")
    path.chmod(0o600)
    monkeypatch.delenv("REPLYBRIDGE_SECRET_KEY")
    return path


@pytest.fixture
def accounts(lite_bridge: Bridge, smtp_peer, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> Dovecot:
    """An SMTP account with a password on a real peer, an alias sending through it, and an IMAP server."""
    peer = smtp_peer("accept", auth=("ana", PASSWORD))
    add_account(lite_bridge, peer.host, peer.port, monkeypatch, user="ana")
    add_imap(lite_bridge, dovecot, monkeypatch)
    add_alias(lite_bridge, imap="mailbox")
    return dovecot


@needs_dovecot
def test_a_sound_set_up_is_all_ok(lite_bridge: Bridge, accounts: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _key_in_file(monkeypatch)
    server_id = add_poller(lite_bridge, accounts, monkeypatch)
    stop = threading.Event()
    pollers = Pollers(lite_bridge.engine(), stop).start()
    try:
        _wait_for_holder(lite_bridge, server_id)
        code, findings, text = _doctor(lite_bridge)
    finally:
        stop.set()
        pollers.join(10)
    assert code == 0, text
    assert [f["status"] for f in findings] == ["ok"] * len(findings), text
    assert [f["check"] for f in findings] == [
        "secret key", "permissions", "database", "stored secrets", "SMTP account 'main'", "IMAP server 'catchall'",
        "IMAP server 'mailbox'", "poll folder 'INBOX' of IMAP server 'catchall'"]
    assert _one(findings, "secret key")["detail"] == f"from the key file {key}"
    assert _one(findings, "stored secrets")["detail"] == "the key decrypts all 3"
    assert f"watched by process {os.getpid()} on {socket.gethostname()}" in findings[-1]["detail"]
    assert all(line.startswith("ok    ") for line in text.splitlines())
    _no_secret_in(text + json.dumps(findings), accounts)


def _wait_for_holder(b: Bridge, server_id: int) -> None:
    """Until the watcher holds its folder and has finished a pass that did not fail."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with Session(b.engine()) as s:
            state = s.exec(select(ImapFolderState).where(ImapFolderState.imap_server_id == server_id)).first()
        if state and state.lease_owner and state.last_poll_at and not state.last_error:
            return
        time.sleep(0.05)
    raise AssertionError("the watcher did not hold its folder after a good pass within 30 s")


def _no_secret_in(output: str, server: Dovecot | None = None) -> None:
    for secret in (PASSWORD, server.password if server else None, os.environ.get("REPLYBRIDGE_SECRET_KEY")):
        assert not secret or secret not in output
    key = crypto.key_file_path()
    assert not key.exists() or key.read_text().strip() not in output


@needs_dovecot
def test_a_wrong_key_after_a_move_fails_naming_the_accounts(lite_bridge: Bridge, accounts: Dovecot,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _key_in_file(monkeypatch, Fernet.generate_key().decode())  # a new machine's key, not the database's
    code, findings, text = _doctor(lite_bridge)
    assert code == 1
    assert _one(findings, "secret key")["status"] == "ok"  # a key it is, just not this database's
    wrong = _one(findings, "stored secrets")
    assert wrong["status"] == "FAIL"
    assert wrong["detail"] == "the key does not decrypt 2 of 2: SMTP account 'main', IMAP server 'mailbox'"
    assert "put back the key of the installation the database came from" in wrong["fix"]
    assert "FAIL  stored secrets: the key does not decrypt 2 of 2" in text
    assert ". Fix: this is not the key they were stored with" in text
    assert _one(findings, "SMTP account 'main'")["status"] == "FAIL"
    _no_secret_in(text + json.dumps(findings), accounts)


def test_a_missing_key_fails_and_secrets_go_unchecked(lite_bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLYBRIDGE_SECRET_KEY")
    code, findings, _ = _doctor(lite_bridge)
    assert code == 1
    missing = _one(findings, "secret key")
    assert missing["status"] == "FAIL" and "no secret key" in missing["detail"]
    assert str(crypto.key_file_path()) in missing["detail"] and "put back the key" in missing["fix"]
    assert "stored secrets" not in [f["check"] for f in findings]


def test_loose_permissions_fail_with_the_chmod_that_closes_them(lite_bridge: Bridge, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    key = _key_in_file(monkeypatch)
    database = tmp_path / "rb.db"
    lite_bridge.engine().dispose()  # no -wal or -shm left open beside it
    database.chmod(0o644)
    key.chmod(0o640)
    tmp_path.chmod(0o777)
    try:
        code, findings, text = _doctor(lite_bridge)
    finally:
        tmp_path.chmod(0o700)
    assert code == 1
    loose = {f["detail"]: f["fix"] for f in findings if f["check"] == "permissions"}
    assert loose == {
        f"{database} is mode 0644: others can read it": f"chmod 600 {database}",
        f"{key} is mode 0640: its group can read it": f"chmod 600 {key}",
        f"the folder {tmp_path} is mode 0777: others can remove or replace the files in it": f"chmod 700 {tmp_path}",
    }
    assert all(f["status"] == "FAIL" for f in findings if f["check"] == "permissions")

    lite_bridge.engine().dispose()  # (its -wal and -shm, made 0644 like the file meanwhile, go with it)
    database.chmod(0o600)
    key.chmod(0o600)
    tmp_path.chmod(0o755)
    try:
        code, findings, _ = _doctor(lite_bridge)
    finally:
        tmp_path.chmod(0o700)
    assert code == 0  # a folder others may list is a warning
    listed = _one(findings, "permissions")
    assert listed["status"] == "warn" and "others can list the files in it" in listed["detail"]


def test_an_old_schema_a_missing_file_and_an_empty_database(lite_bridge: Bridge, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    older = f"sqlite:///{tmp_path}/older.db"
    engine = make_engine(older)
    command.upgrade(alembic_config(engine), "0012")
    engine.dispose()
    for url, words, fix in [
        (older, "its schema is at revision 0012, older than", "run `replybridge init`: it upgrades the schema"),
        (f"sqlite:///{tmp_path}/gone.db", "there is no database file at", "replybridge restore FILE"),
        (f"sqlite:///{tmp_path}/empty.db", "not initialised", "run `replybridge init`"),
    ]:
        if url.endswith("empty.db"):
            make_engine(url).dispose()  # an empty SQLite file
        with monkeypatch.context() as m:
            m.setenv("REPLYBRIDGE_DATABASE_URL", url)
            code, findings, text = _doctor(lite_bridge)
        found = _one(findings, "database")
        assert code == 1 and found["status"] == "FAIL" and words in found["detail"] and fix in found["fix"], text
        assert findings[-1] == {"check": "accounts and poll folders", "status": "warn",
                                "detail": "not checked: the database cannot be used", "fix": "fix the database first"}
    assert not (tmp_path / "gone.db").exists()  # the doctor looks; it creates nothing


def test_dead_servers_fail_within_the_deadline(lite_bridge: Bridge, smtp_peer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    silent = smtp_peer("silent")  # accepts the connection, never says a word
    for n in range(10):
        add_account(lite_bridge, silent.host, silent.port, monkeypatch, name=f"silent{n}", timeout=30)
    add_account(lite_bridge, "127.0.0.1", closed_port(), monkeypatch, name="refused")
    started = time.monotonic()
    code, findings, text = _doctor(lite_bridge, "--timeout", "1")
    took = time.monotonic() - started
    assert code == 1
    assert took < 8, f"two runs of 11 checks took {took:.1f} s: they do not run at once"  # 10 x 30 s one by one
    for n in range(10):
        dead = _one(findings, f"SMTP account 'silent{n}'")
        assert dead["status"] == "FAIL" and dead["detail"] == "no answer within 1 s"
        assert "`replybridge test smtp silent" in dead["fix"]
    refused = _one(findings, "SMTP account 'refused'")
    assert refused["status"] == "FAIL" and "connection refused" in refused["detail"].lower()
    assert refused["fix"] and "replybridge test smtp refused" in refused["fix"]


@needs_dovecot
def test_poll_folders_nobody_watches_or_that_fail(lite_bridge: Bridge, dovecot: Dovecot,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server_id = add_poller(lite_bridge, dovecot, monkeypatch, password="not-the-password")
    check = "poll folder 'INBOX' of IMAP server 'catchall'"
    _, findings, _ = _doctor(lite_bridge)
    never = _one(findings, check)
    assert never["status"] == "warn" and "never polled" in never["detail"] and "replybridge serve" in never["fix"]

    engine = lite_bridge.engine()
    report = one_pass.poll_once(engine, server_id, folder_state.default_owner())  # a real pass, refused login
    assert report.error
    code, findings, text = _doctor(lite_bridge)
    failed = _one(findings, check)
    assert code == 1 and failed["status"] == "FAIL" and failed["detail"].startswith("its last pass failed: ")
    assert failed["fix"] == "`replybridge test imap catchall` shows where it fails"
    _no_secret_in(text, dovecot)

    with Session(engine) as s:  # the failure is past (a later pass did well); a process took it and ended
        state = s.exec(select(ImapFolderState).where(ImapFolderState.imap_server_id == server_id)).one()
        state.last_error = None
        s.add(state)
        s.commit()
        state_id = state.id
    ended = subprocess.Popen(["true"])  # a process that has ended, whose lease is still unexpired
    ended.wait()
    assert folder_state.take_lease(engine, state_id, f"{socket.gethostname()}:{ended.pid}:1:{server_id}") is None
    _, findings, _ = _doctor(lite_bridge)
    stale = _one(findings, check)
    assert stale["status"] == "warn" and "which is no longer running" in stale["detail"]
    assert "its lease runs out at" in stale["fix"]


def test_json_shape_on_sqlite_and_postgresql(bridge: Bridge) -> None:
    code, findings, text = _doctor(bridge)
    assert code == 0, text
    assert all(set(f) == {"check", "status", "detail", "fix"} for f in findings)
    assert _one(findings, "database")["status"] == "ok"
    assert _one(findings, "stored secrets")["detail"] == "none stored yet"
    assert len(text.splitlines()) == len(findings)
