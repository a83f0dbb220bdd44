"""Changing and removing set-up on the CLI, against real peers: a wrong password fixed with `smtp set`, a
removal refused while something uses the thing (naming it), and history kept after a removal."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bridge.inbound.imap.one_pass import poll_once
from models import Alias, ImapFolderState, OutboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.setup_steps import PASSWORD, add_account, add_alias, add_imap, add_poller, send
from tests.servers.dovecot import Dovecot


def test_a_wrong_password_is_fixed_with_smtp_set(lite_bridge: Bridge, smtp_peer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept", auth=("ana", PASSWORD))
    lite_bridge.run("smtp", "add", "main", "--host", peer.host, "--port", str(peer.port), "--security", "none",
                    "--username", "ana", "--password-stdin", stdin="wrong-one\n")
    add_alias(lite_bridge)
    failed = lite_bridge.run("test", "smtp", "main", ok=False)
    assert failed.exit_code == 1 and "username or password" in failed.stdout
    assert "replybridge smtp set main --username U --password-stdin" in failed.stdout  # the command that fixes it
    assert "(Admin, SMTP accounts)" in failed.stdout  # and the page
    monkeypatch.setenv("RB_NEW_PW", PASSWORD)
    changed = lite_bridge.run("smtp", "set", "main", "--password-env", "RB_NEW_PW")
    assert "changed" in changed.stdout and PASSWORD not in changed.output
    assert lite_bridge.run("test", "smtp", "main").stdout.strip().endswith("Status: OK")
    [shown] = lite_bridge.json("smtp", "list")
    assert (shown["host"], shown["port"], shown["username"]) == (peer.host, peer.port, "ana")  # the rest kept


def test_smtp_set_changes_only_what_is_given(lite_bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = smtp_peer("accept"), smtp_peer("accept")
    add_account(lite_bridge, first.host, first.port, monkeypatch, name="one", default=True)
    add_account(lite_bridge, second.host, second.port, monkeypatch, name="two")
    lite_bridge.run("smtp", "set", "two", "--default", "--timeout", "7", "--rename", "second")
    shown = {a["name"]: a for a in lite_bridge.json("smtp", "list")}
    assert set(shown) == {"one", "second"} and shown["second"]["default"] and not shown["one"]["default"]
    assert (shown["second"]["timeout"], shown["second"]["port"]) == (7, second.port)
    bad = lite_bridge.run("smtp", "set", "second", "--port", "70000", ok=False)
    assert bad.exit_code == 1 and "port" in bad.stderr
    assert lite_bridge.json("smtp", "list") == list(shown.values())  # nothing changed


def test_removing_an_account_an_alias_uses_is_refused_naming_it(lite_bridge: Bridge, smtp_peer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    peer, other = smtp_peer("accept"), smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_account(lite_bridge, other.host, other.port, monkeypatch, name="other")
    add_alias(lite_bridge)
    refused = lite_bridge.run("smtp", "remove", "main", ok=False)
    assert refused.exit_code == 1 and "'Ana jobs'" in refused.stderr and "alias set" in refused.stderr
    lite_bridge.run("alias", "set", "Ana jobs", "--smtp", "other")
    lite_bridge.run("smtp", "remove", "main")
    assert [a["name"] for a in lite_bridge.json("smtp", "list")] == ["other"]
    missing = lite_bridge.run("smtp", "remove", "main", ok=False)
    assert missing.exit_code == 1 and "no SMTP account named 'main'" in missing.stderr


def test_removing_a_linked_imap_server_is_refused_and_a_poller_goes_with_its_state(
        lite_bridge: Bridge, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    add_imap(lite_bridge, dovecot, monkeypatch)
    add_alias(lite_bridge, smtp=None, imap="mailbox")
    refused = lite_bridge.run("imap", "remove", "mailbox", ok=False)
    assert refused.exit_code == 1 and "'Ana jobs'" in refused.stderr
    lite_bridge.run("alias", "set", "Ana jobs", "--imap", "")
    lite_bridge.run("imap", "remove", "mailbox")
    poll_once(lite_bridge.engine(), add_poller(lite_bridge, dovecot, monkeypatch), "test")  # a folder state
    with Session(lite_bridge.engine()) as s:
        assert len(s.exec(select(ImapFolderState)).all()) == 1
    lite_bridge.run("imap", "set", "catchall", "--sent-folder", "Sent", "--poll-after", "none")
    assert lite_bridge.json("imap", "list")[0]["sent_folder"] == "Sent"
    lite_bridge.run("imap", "remove", "catchall")
    with Session(lite_bridge.engine()) as s:
        assert s.exec(select(ImapFolderState)).all() == []


def test_an_alias_with_mail_waiting_is_not_removed_and_its_sent_mail_keeps_its_from(
        lite_bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    lite_bridge.run("alias", "set", "Ana jobs", "--reply-to", "ana.own@example.test", "--delay-ms", "5",
                    "--display-name", "Ana R.")
    [shown] = lite_bridge.json("alias", "list")
    assert (shown["reply_to"], shown["delay_ms"], shown["display_name"]) == ("ana.own@example.test", 5, "Ana R.")
    send(lite_bridge)
    refused = lite_bridge.run("alias", "remove", "Ana jobs", ok=False)
    assert refused.exit_code == 1 and "1 message(s) waiting" in refused.stderr
    lite_bridge.run("worker", "--once")
    lite_bridge.run("alias", "remove", "Ana jobs")
    with Session(lite_bridge.engine()) as s:
        assert s.exec(select(Alias)).all() == []
        sent = s.exec(select(OutboundMessage)).one()
    assert sent.alias_id is None and sent.from_addr.endswith("<jobs+1042@example.test>")
    assert lite_bridge.json("log")[0]["status"] == "sent"


def test_employee_set(lite_bridge: Bridge) -> None:
    lite_bridge.run("employee", "set", "1042", "--name", "Ana Ruiz-Diaz", "--admin", "--delivery", "none")
    [shown] = lite_bridge.json("employee", "list")
    assert (shown["name"], shown["email"], shown["admin"], shown["delivery"]) == (
        "Ana Ruiz-Diaz", "ana@example.test", True, "none")
    bad = lite_bridge.run("employee", "set", "1042", "--email", "not an address", ok=False)
    assert bad.exit_code == 1 and lite_bridge.json("employee", "list")[0]["email"] == "ana@example.test"
