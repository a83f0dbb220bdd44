r"""The Sent folder copy, against a real Dovecot: exact bytes, \Seen, once, even across retries.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bridge.outbound import sender, sent_folder
from models import OutboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.setup_steps import add_account, add_alias, add_imap, only_entry, send
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot, start_dovecot
from tests.servers.smtp_peers import SmtpPeer

pytestmark = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")


def linked_sender(b: Bridge, smtp_peer, server: Dovecot, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
                  **imap_options: str) -> SmtpPeer:
    """An accepting SMTP peer, the alias sending through it, linked to `server`'s Sent folder."""
    peer = smtp_peer("accept")
    add_account(b, peer.host, peer.port, monkeypatch)
    add_imap(b, server, monkeypatch, **imap_options)
    add_alias(b, imap="mailbox")
    return peer


def stored_raw(b: Bridge) -> bytes:
    with Session(b.engine()) as s:
        return s.exec(select(OutboundMessage.raw)).one()


def test_sent_mail_is_filed_once_with_exact_bytes_and_seen(bridge: Bridge, smtp_peer, dovecot: Dovecot,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(bridge, peer.host, peer.port, monkeypatch)
    add_imap(bridge, dovecot, monkeypatch)
    add_alias(bridge)
    bridge.run("alias", "link", "Ana jobs", "--imap", "mailbox")
    send(bridge, subject="Entrevista mañana")
    bridge.run("worker", "--once")

    entry = only_entry(bridge)
    assert (entry["status"], entry["sent_folder"]) == ("sent", "appended")
    filed = dovecot.folder_messages("Sent")
    assert filed == [stored_raw(bridge)] == [peer.received[0].data]
    assert b"\\Seen" in dovecot.folder_flags("Sent")[0]
    bridge.run("worker", "--once")
    assert len(dovecot.folder_messages("Sent")) == 1


def test_retry_after_a_crash_finds_the_copy_and_files_nothing_twice(lite_bridge: Bridge, smtp_peer,
                                                                    dovecot: Dovecot,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    linked_sender(lite_bridge, smtp_peer, dovecot, monkeypatch)
    send(lite_bridge)
    lite_bridge.run("worker", "--once")
    assert len(dovecot.folder_messages("Sent")) == 1
    # The worker died after APPEND but before recording it: the state says pending, claimed once.
    with Session(lite_bridge.engine()) as s:
        m = s.exec(select(OutboundMessage)).one()
        m.sent_folder, m.sent_folder_next_at = "pending", m.created_at
        s.add(m)
        s.commit()
    lite_bridge.run("worker", "--once")
    assert only_entry(lite_bridge)["sent_folder"] == "appended"
    assert len(dovecot.folder_messages("Sent")) == 1


@pytest.mark.parametrize("special_use, folder_name, configured", [
    (True, "Gesendet", None),           # SPECIAL-USE \Sent, whatever its name
    (False, "Sent Items", None),        # no SPECIAL-USE: the usual names
    (False, "Outbox Archive", "Outbox Archive"),  # no SPECIAL-USE, unusual name: the configured one
])
def test_sent_folder_discovery(lite_bridge: Bridge, smtp_peer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               special_use: bool, folder_name: str, configured: str | None) -> None:
    server = start_dovecot(tmp_path / "imap", special_use=special_use, sent_name=folder_name)
    try:
        linked_sender(lite_bridge, smtp_peer, server, monkeypatch, sent_folder_name=configured)
        assert f"Sent folder: {folder_name}" in lite_bridge.run("test", "imap", "mailbox").stdout
        send(lite_bridge)
        lite_bridge.run("worker", "--once")
        assert only_entry(lite_bridge)["sent_folder"] == "appended"
        assert len(server.folder_messages(folder_name)) == 1
    finally:
        server.stop()


def test_no_sent_folder_is_reported_and_retried(lite_bridge: Bridge, smtp_peer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_dovecot(tmp_path / "imap", special_use=False, sent_name="Outbox Archive")
    try:
        linked_sender(lite_bridge, smtp_peer, server, monkeypatch)
        result = lite_bridge.run("test", "imap", "mailbox", ok=False)
        assert result.exit_code == 1 and "Status: FAILED" in result.stdout and "--sent-folder" in result.stdout
        send(lite_bridge)
        lite_bridge.run("worker", "--once")
        entry = only_entry(lite_bridge)
        assert (entry["status"], entry["sent_folder"]) == ("sent", "pending")
        assert "--sent-folder" in entry["sent_folder_error"]
    finally:
        server.stop()


def test_wrong_imap_password_leaves_the_send_alone_and_gives_up_after_retries(
        lite_bridge: Bridge, smtp_peer, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    linked_sender(lite_bridge, smtp_peer, dovecot, monkeypatch, password="wrong-password")
    send(lite_bridge)
    for _ in range(sent_folder.MAX_APPEND_ATTEMPTS):
        lite_bridge.run("worker", "--once")
        with Session(lite_bridge.engine()) as s:  # make the next retry due now
            m = s.exec(select(OutboundMessage)).one()
            m.sent_folder_next_at = m.created_at
            s.add(m)
            s.commit()
    entry = only_entry(lite_bridge)
    assert (entry["status"], entry["sent_folder"]) == ("sent", "failed")
    assert "username or password" in entry["sent_folder_error"]
    assert dovecot.folder_messages("Sent") == []


def test_provider_that_files_sent_mail_itself_is_skipped(lite_bridge: Bridge, smtp_peer, dovecot: Dovecot,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    lite_bridge.run("smtp", "add", "gmail-like", "--host", peer.host, "--port", str(peer.port), "--security", "none",
                    "--provider-files-sent")
    add_imap(lite_bridge, dovecot, monkeypatch)
    add_alias(lite_bridge, smtp="gmail-like", imap="mailbox")
    send(lite_bridge)
    lite_bridge.run("worker", "--once")
    assert only_entry(lite_bridge)["sent_folder"] == "skipped"
    assert dovecot.folder_messages("Sent") == []


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_test_imap_ok_over_tls(lite_bridge: Bridge, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch,
                               security: str) -> None:
    add_imap(lite_bridge, dovecot, monkeypatch, security=security)
    out = lite_bridge.run("test", "imap", "mailbox").stdout
    assert out.strip().endswith("Status: OK") and "Sent folder: Sent" in out


def test_test_imap_wrong_password(lite_bridge: Bridge, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    add_imap(lite_bridge, dovecot, monkeypatch, password="wrong-password")
    result = lite_bridge.run("test", "imap", "mailbox", ok=False)
    assert result.exit_code == 1
    assert "Status: FAILED" in result.stdout and "username or password" in result.stdout
    assert "wrong-password" not in result.output


def test_alias_unlinked_after_the_send_fails_the_copy_with_a_reason(lite_bridge: Bridge, smtp_peer,
                                                                    dovecot: Dovecot,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from models import Alias

    linked_sender(lite_bridge, smtp_peer, dovecot, monkeypatch)
    send(lite_bridge)
    sender.send_due(lite_bridge.engine())  # sent; the copy is pending
    with Session(lite_bridge.engine()) as s:
        alias = s.exec(select(Alias)).one()
        alias.imap_server_id = None
        s.add(alias)
        s.commit()
    lite_bridge.run("worker", "--once")
    entry = only_entry(lite_bridge)
    assert (entry["status"], entry["sent_folder"]) == ("sent", "failed")
    assert "no longer linked" in entry["sent_folder_error"]


def test_a_dead_appenders_copies_are_taken_over_once_their_lease_runs_out(
        lite_bridge: Bridge, smtp_peer, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    monkeypatch.setattr(sent_folder, "LEASE", dt.timedelta(seconds=1))
    linked_sender(lite_bridge, smtp_peer, dovecot, monkeypatch)
    send(lite_bridge)
    sender.send_due(lite_bridge.engine())
    assert sum(map(len, sent_folder.claim(lite_bridge.engine()).values())) == 1  # then its holder dies
    assert sent_folder.run(lite_bridge.engine()) == 0  # the lease still holds
    time.sleep(1.2)
    assert sent_folder.run(lite_bridge.engine()) == 1
    assert len(dovecot.folder_messages("Sent")) == 1 and only_entry(lite_bridge)["sent_folder"] == "appended"


def test_a_hung_imap_server_holds_only_its_own_copies(lite_bridge: Bridge, smtp_peer, dovecot: Dovecot,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Each server is appended to in a lane of its own: the working server's copy is filed while the hung one's
    connection still waits for a greeting."""
    hung_timeout = 10.0
    linked_sender(lite_bridge, smtp_peer, dovecot, monkeypatch)
    hung = smtp_peer("silent")  # accepts the connection, never says a word
    lite_bridge.run("imap", "add", "hung", "--host", hung.host, "--port", str(hung.port), "--security", "none",
                    "--username", "u", "--password-env", "RB_IMAP_PW", "--timeout", str(hung_timeout))
    lite_bridge.run("employee", "add", "--number", "2001", "--name", "Bo", "--email", "bo@example.test")
    lite_bridge.run("alias", "add", "--employee", "2001", "--description", "Bo jobs", "--display-name", "Bo",
                    "--from", "bo@example.test", "--smtp", "main", "--imap", "hung")
    lite_bridge.run("send", "--employee", "2001", "--to", "c1@example.org", "--subject", "Hi", "--body", "Hello")
    send(lite_bridge)  # queued after the hung server's copy
    sender.send_due(lite_bridge.engine())
    filed: list[int] = []
    worker = threading.Thread(target=lambda: filed.append(sent_folder.run(lite_bridge.engine())))
    started = time.monotonic()
    worker.start()
    while not dovecot.folder_messages("Sent") and time.monotonic() - started < hung_timeout - 3:
        time.sleep(0.1)
    took = time.monotonic() - started
    assert len(dovecot.folder_messages("Sent")) == 1, "the working server's copy waited for the hung server"
    assert took < hung_timeout - 3 and worker.is_alive()
    worker.join(hung_timeout * 2)
    assert filed == [1]
    states = {e["to"]: (e["sent_folder"], e["sent_folder_error"]) for e in lite_bridge.json("log")}
    assert states["cand@example.org"] == ("appended", None)
    assert states["c1@example.org"][0] == "pending" and "hung" in states["c1@example.org"][1]
