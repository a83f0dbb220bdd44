"""Outbound through real SMTP exchanges: the Mail Log status and hint for every failure the issue names.

Each peer is an aiosmtpd (or raw socket) server on loopback that answers the way real providers do.
"""

from __future__ import annotations

import email
import email.policy
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bridge.outbound import claims, sender
from models import OutboundMessage
from tests.helpers.at_once import errors_of
from tests.helpers.bridge import Bridge
from tests.helpers.ports import closed_port
from tests.helpers.setup_steps import PASSWORD, add_account, add_alias, only_entry, send
from tests.servers.certs import CertPair
from tests.servers.smtp_peers import SmtpPeer


def test_send_from_numbered_address_with_starttls_and_auth(bridge: Bridge, smtp_peer, tls_cert: CertPair,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    peer: SmtpPeer = smtp_peer("accept", tls="starttls", cert=tls_cert, auth=("ana", PASSWORD))
    add_account(bridge, "localhost", peer.port, monkeypatch, security="starttls", user="ana", ca=tls_cert)
    add_alias(bridge)
    mail_id = send(bridge, subject="Backend engineer – next steps")
    bridge.run("worker", "--once")

    entry = only_entry(bridge)
    assert entry["id"] == mail_id and entry["status"] == "sent" and entry["attempts"] == 1
    assert entry["last_reply"].startswith("250") and entry["hint"] is None
    assert entry["sent_folder"] == "none"  # no IMAP server linked
    assert len(peer.received) == 1
    got = peer.received[0]
    assert got.mail_from == "jobs+1042@example.test" and got.rcpt_tos == ["cand@example.org"]
    msg = email.message_from_bytes(got.data, policy=email.policy.default)
    assert msg["From"].addresses[0].addr_spec == "jobs+1042@example.test"
    assert msg["Message-ID"] == entry["message_id"]
    assert msg["Subject"] == "Backend engineer – next steps"
    with Session(bridge.engine()) as s:
        raw = s.exec(select(OutboundMessage.raw)).one()
    assert got.data.rstrip(b"\r\n") == raw.rstrip(b"\r\n")  # the exact stored bytes went out


def test_reply_to_mode_keeps_alias_from_and_numbers_reply_to(lite_bridge: Bridge, smtp_peer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    lite_bridge.run("settings", "set", "sender_mode", "reply-to")
    send(lite_bridge)
    lite_bridge.run("worker", "--once")
    msg = email.message_from_bytes(peer.received[0].data, policy=email.policy.default)
    assert msg["From"].addresses[0].addr_spec == "ana@example.test"
    assert msg["Reply-To"] == "jobs+1042@example.test"


@pytest.mark.parametrize("mode, sender", [("from", "jobs+1042@example.test"), ("reply-to", "ana@example.test")])
def test_an_alias_reply_to_never_drops_the_numbered_address(lite_bridge: Bridge, smtp_peer,
                                                            monkeypatch: pytest.MonkeyPatch, mode: str,
                                                            sender: str) -> None:
    """The recipes' "Reply To Address: your email": both go in Reply-To, the numbered address first."""
    peer = smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    lite_bridge.run("alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana Ruiz",
                    "--from", "ana@example.test", "--reply-to", "ana@example.test", "--smtp", "main")
    lite_bridge.run("settings", "set", "sender_mode", mode)
    send(lite_bridge)
    lite_bridge.run("worker", "--once")
    msg = email.message_from_bytes(peer.received[0].data, policy=email.policy.default)
    assert msg["From"].addresses[0].addr_spec == sender
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == ["jobs+1042@example.test", "ana@example.test"]
    assert "never dropped" in lite_bridge.run("alias", "add", "--help").stdout


FAILURES = [
    # behaviour, peer options, account options, status, attempts, words in last_reply, words in hint
    ("auth_535", {}, {"user": "ana"}, "undeliverable", 1, "535 5.7.3", "app password"),
    ("relay_denied", {}, {}, "undeliverable", 1, "550 5.7.1 Unable to relay", "relay"),
    ("send_as_denied", {}, {}, "undeliverable", 1, "5.7.60", "Send As"),
    ("send_as_denied_data", {}, {}, "undeliverable", 1, "5.2.252 SendAsDenied", "sender mode `reply-to`"),
    ("reject_550_user", {}, {}, "undeliverable", 1, "5.1.1", "does not exist"),
    ("tempfail_451", {}, {}, "undeliverable", 3, "451 4.3.0", "Gave up after 3 attempts"),
    ("mailbox_full_452", {}, {}, "undeliverable", 3, "452 4.2.2", "mailbox is full"),
    ("drop_after_ehlo", {}, {}, "undeliverable", 3, "unexpectedly closed", "closed the connection"),
    ("plain_banner", {}, {"security": "ssl"}, "undeliverable", 1, "WRONG_VERSION_NUMBER", "465 uses `ssl`"),
    ("accept", {}, {"security": "starttls"}, "undeliverable", 1, "STARTTLS", "does not offer STARTTLS"),
    ("accept", {"tls": "ssl"}, {"security": "ssl", "ca": None}, "undeliverable", 1, "certificate verify failed",
     "--ca-file"),
]


@pytest.mark.parametrize("behaviour, peer_opts, account_opts, status, attempts, reply_words, hint_words", FAILURES,
                         ids=[f"{f[0]}-{f[2].get('security', 'none')}" for f in FAILURES])
def test_each_failure_is_logged_with_reply_and_hint(lite_bridge: Bridge, smtp_peer, tls_cert: CertPair,
                                                    monkeypatch: pytest.MonkeyPatch, behaviour: str,
                                                    peer_opts: dict, account_opts: dict, status: str,
                                                    attempts: int, reply_words: str, hint_words: str) -> None:
    if peer_opts.get("tls") == "ssl":
        peer_opts = {**peer_opts, "cert": tls_cert}
    peer = smtp_peer(behaviour, **peer_opts)
    add_account(lite_bridge, "localhost", peer.port, monkeypatch, **account_opts)
    add_alias(lite_bridge)
    send(lite_bridge)
    lite_bridge.run("worker", "--once")
    entry = only_entry(lite_bridge)
    assert (entry["status"], entry["attempts"]) == (status, attempts), entry
    assert reply_words in entry["last_reply"], entry
    assert hint_words in entry["hint"], entry
    assert "bridge retries" not in entry["hint"] and ("Gave up" in entry["hint"]) == (attempts > 1), entry
    shown = lite_bridge.run("log").stdout
    assert status in shown and hint_words in shown
    assert peer.received == []


@pytest.mark.parametrize("where, hint_words", [
    ("closed", "connection refused"),
    ("silent", "No answer from"),
    ("unknown-host", "cannot be resolved"),
])
def test_temporary_network_failures_are_deferred_for_retry(lite_bridge: Bridge, smtp_peer,
                                                           monkeypatch: pytest.MonkeyPatch, where: str,
                                                           hint_words: str) -> None:
    lite_bridge.run("settings", "set", "retry_delays", "60,300")
    host, port = "127.0.0.1", closed_port()
    if where == "silent":
        port = smtp_peer("silent").port
    if where == "unknown-host":
        host = "smtp.nonexistent.invalid"
    add_account(lite_bridge, host, port, monkeypatch, timeout=1)
    add_alias(lite_bridge)
    send(lite_bridge)
    lite_bridge.run("worker", "--once")
    entry = only_entry(lite_bridge)
    assert (entry["status"], entry["attempts"]) == ("deferred", 1)
    assert hint_words in entry["hint"]
    if where != "unknown-host":  # the Mail Log names this server's address for the provider's allow list
        assert "127.0.0.1" in entry["hint"]
    assert entry["next_attempt_at"]
    lite_bridge.run("worker", "--once")  # the retry is not due yet: nothing happens
    assert only_entry(lite_bridge)["attempts"] == 1


def test_temporary_failure_then_success_on_retry(lite_bridge: Bridge, smtp_peer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("tempfail_451", fail_times=1)
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    mail_id = send(lite_bridge)
    lite_bridge.run("worker", "--once")
    entry = only_entry(lite_bridge)
    assert (entry["status"], entry["attempts"]) == ("sent", 2)
    history = lite_bridge.json("log", "--id", str(mail_id))["history"]
    assert [h["outcome"] for h in history] == ["deferred", "sent"]
    assert history[0]["code"] == 451 and "retries" in history[0]["hint"]
    assert len(peer.received) == 1


def test_no_account_is_not_sent_then_queued_again(bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch) -> None:
    add_alias(bridge, smtp=None)
    result = bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi", "--body", "x")
    assert "not sent" in result.stderr
    entry = only_entry(bridge)
    assert entry["status"] == "not_sent" and "no SMTP account" in entry["last_reply"]
    assert "--default" in entry["hint"]
    bridge.run("worker", "--once")
    assert only_entry(bridge)["status"] == "not_sent"  # nothing to send through: stays as it is

    peer = smtp_peer("accept")
    add_account(bridge, peer.host, peer.port, monkeypatch, default=True)
    bridge.run("requeue", str(entry["id"]))
    bridge.run("worker", "--once")
    assert only_entry(bridge)["status"] == "sent"
    assert len(peer.received) == 1


def test_undeliverable_can_be_queued_again(lite_bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("relay_denied", fail_times=1)
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    send(lite_bridge)
    lite_bridge.run("worker", "--once")
    assert only_entry(lite_bridge)["status"] == "undeliverable"
    bad = lite_bridge.run("requeue", "999", ok=False)
    assert bad.exit_code == 1 and "no Mail Log entry 999" in bad.stderr
    lite_bridge.run("requeue", "--status", "undeliverable")
    lite_bridge.run("worker", "--once")
    entry = only_entry(lite_bridge)
    assert entry["status"] == "sent" and len(peer.received) == 1
    again = lite_bridge.run("requeue", str(entry["id"]), ok=False)
    assert again.exit_code == 1 and "only not_sent and undeliverable" in again.stderr


def test_header_injection_and_portal_placeholder_queue_nothing(lite_bridge: Bridge) -> None:
    add_alias(lite_bridge, smtp=None)
    bad = lite_bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject",
                          "Hi\r\nBcc: victim@example.org", "--body", "x", ok=False)
    assert bad.exit_code == 1 and "line break" in bad.stderr
    bad = lite_bridge.run("send", "--employee", "1042", "--to", "cand@example.org\nBcc: v@example.org",
                          "--subject", "Hi", "--body", "x", ok=False)
    assert bad.exit_code == 1 and "line break" in bad.stderr
    bad = lite_bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi",
                          "--body", "Apply at {portal_url}/jobs/7", ok=False)
    assert bad.exit_code == 1 and "portal_url" in bad.stderr and "nothing was queued" in bad.stderr
    assert lite_bridge.json("log") == []

    lite_bridge.run("settings", "set", "portal_url", "https://careers.example.test/")
    send(lite_bridge, body="Apply at {portal_url}/jobs/7 {not_a_placeholder}")
    with Session(lite_bridge.engine()) as s:
        raw = s.exec(select(OutboundMessage.raw)).one()
    assert b"Apply at https://careers.example.test/jobs/7 {not_a_placeholder}" in raw


def test_portal_links_come_out_right_whichever_way_the_url_was_typed(lite_bridge: Bridge) -> None:
    add_alias(lite_bridge, smtp=None)
    bodies = {"{portal_url}jobs/1": "https://hrim01:8443/jobs/1", "{portal_url}/jobs/1": "https://hrim01:8443/jobs/1",
              "Sign in at {portal_url}.": "Sign in at https://hrim01:8443."}
    for typed in ("https://hrim01:8443", "https://hrim01:8443/", "https://hrim01:8443//"):
        lite_bridge.run("settings", "set", "portal_url", typed)
        for body, link in bodies.items():
            shown = lite_bridge.json("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi",
                                     "--body", body)
            with Session(lite_bridge.engine()) as s:
                raw = s.get(OutboundMessage, shown["id"]).raw
            assert link.encode() in raw, (typed, body)


def test_one_connection_per_batch_and_alias_delay_between_emails(lite_bridge: Bridge, smtp_peer,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge, delay_ms=300)
    for n in range(3):
        send(lite_bridge, to=f"c{n}@example.org")
    started = time.monotonic()
    lite_bridge.run("worker", "--once")
    assert time.monotonic() - started >= 0.6  # two delays between three emails
    assert [e["status"] for e in lite_bridge.json("log")] == ["sent"] * 3
    assert peer.connections == 1


def test_bulk_csv_queues_all_rows_or_none(lite_bridge: Bridge, tmp_path: Path) -> None:
    add_alias(lite_bridge, smtp=None, delay_ms=2000)
    body = tmp_path / "body.txt"
    body.write_text("Dear {name}, your application for {role} arrived.")
    rows = tmp_path / "rows.csv"
    rows.write_text("email,name,role\nsam@example.org,Sam,Backend\nkim@example.org,Kim,Design\n"
                    "bad-address,Bo,QA\n")
    bad = lite_bridge.run("send", "--employee", "1042", "--csv", str(rows), "--subject", "Your application",
                          "--body-file", str(body), ok=False)
    assert bad.exit_code == 1 and "line 4" in bad.stderr and "nothing was queued" in bad.stderr
    assert lite_bridge.json("log") == []

    rows.write_text("email,name,role\nsam@example.org,Sam,Backend\nkim@example.org,Kim,Design\n")
    ok = lite_bridge.run("send", "--employee", "1042", "--csv", str(rows), "--subject", "Your application",
                         "--body-file", str(body))
    assert "Queued 2 messages" in ok.stderr and "2000 ms" in ok.stderr and "2 s" in ok.stderr
    with Session(lite_bridge.engine()) as s:
        raws = [m.raw for m in s.exec(select(OutboundMessage).order_by(OutboundMessage.id))]
    assert b"Dear Sam, your application for Backend arrived." in raws[0]
    assert b"Dear Kim, your application for Design arrived." in raws[1]


def test_two_workers_never_send_one_message_twice(bridge: Bridge, smtp_peer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(bridge, peer.host, peer.port, monkeypatch)
    add_alias(bridge)
    for n in range(20):
        send(bridge, to=f"c{n}@example.org")
    engine = bridge.engine()
    assert errors_of(lambda: sender.send_due(engine), 3) == []
    ids = [email.message_from_bytes(r.data)["Message-ID"] for r in peer.received]
    assert len(ids) == 20 and len(set(ids)) == 20
    assert {e["status"] for e in bridge.json("log")} == {"sent"}


def test_worker_reclaims_a_message_whose_worker_died(lite_bridge: Bridge, smtp_peer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    send(lite_bridge)
    claimed = claims.claim_batch(lite_bridge.engine())  # a worker claims it, then dies
    assert isinstance(claimed, list) and len(claimed) == 1
    lite_bridge.run("worker", "--once")
    assert only_entry(lite_bridge)["status"] == "sending"  # its lease still holds
    with Session(lite_bridge.engine()) as s:
        m = s.exec(select(OutboundMessage)).one()
        m.claimed_until = m.claimed_until.replace(year=2000)
        s.add(m)
        s.commit()
    lite_bridge.run("worker", "--once")
    assert only_entry(lite_bridge)["status"] == "sent" and len(peer.received) == 1


def test_elapsed_is_bounded_for_slow_servers(lite_bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The account's timeout bounds a silent server: the worker does not hang."""
    lite_bridge.run("settings", "set", "retry_delays", "60,300")
    peer = smtp_peer("silent")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch, timeout=1)
    add_alias(lite_bridge)
    send(lite_bridge)
    started = time.monotonic()
    lite_bridge.run("worker", "--once")
    assert time.monotonic() - started < 10


def test_not_sent_says_the_true_cause_and_the_one_fix(lite_bridge: Bridge, smtp_peer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)  # the alias's own; no database-wide account
    add_alias(lite_bridge)
    automated = lite_bridge.json("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Thanks",
                                 "--body", "Thank you.", "--automated")
    assert automated["status"] == "not_sent"
    assert "automated mail goes through the database-wide account, and there is none" in automated["last_reply"]
    assert "alias" not in automated["last_reply"] and "--default" in automated["hint"]
    assert "--smtp" not in automated["hint"] and "requeue" in automated["hint"]
    lite_bridge.run("alias", "add", "--employee", "1042", "--description", "No account", "--display-name", "Ana",
                    "--from", "ana@example.test")
    personal = lite_bridge.json("send", "--employee", "1042", "--alias", "No account", "--to", "cand@example.org",
                                "--subject", "Hi", "--body", "Hello")
    assert personal["status"] == "not_sent" and "the alias 'No account' has none" in personal["last_reply"]
    assert "--smtp NAME" in personal["hint"] and "--default" in personal["hint"]


def test_automated_mail_goes_through_the_database_wide_account(lite_bridge: Bridge, smtp_peer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    personal, shared = smtp_peer("accept"), smtp_peer("accept")
    add_account(lite_bridge, personal.host, personal.port, monkeypatch)
    add_account(lite_bridge, shared.host, shared.port, monkeypatch, name="shared", default=True)
    add_alias(lite_bridge)
    lite_bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "We got your application",
                    "--body", "Thank you.", "--automated")
    send(lite_bridge)  # a person's mail: the alias's own account
    lite_bridge.run("worker", "--once")
    assert len(shared.received) == 1 and len(personal.received) == 1
    automated = email.message_from_bytes(shared.received[0].data, policy=email.policy.default)
    assert automated["Auto-Submitted"] == "auto-generated" and automated["X-Auto-Response-Suppress"] == "All"
    assert "Auto-Submitted" not in email.message_from_bytes(personal.received[0].data)
    assert {e["smtp_account"] for e in lite_bridge.json("log")} == {"main", "shared"}
