"""Routed replies reach their recruiter (forward / imap / none); acknowledgements go out once, safely."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import time

import pytest
from sqlmodel import Session, select

from bridge.inbound.hand_off import imap
from models import InboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import ingest_json
from tests.helpers.messages import reply
from tests.helpers.setup_steps import add_account, add_alias, add_imap
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot

needs_dovecot = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")


def test_forward_carries_the_original_with_resent_headers(bridge: Bridge, smtp_peer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shared = smtp_peer("accept")
    add_account(bridge, shared.host, shared.port, monkeypatch, name="shared", default=True)
    message = reply("fw1@example.org", "Cand <cand@example.org>", "jobs+1042@example.test")
    got = ingest_json(bridge, message)
    assert got["delivery"] == "forward queued"
    bridge.run("worker", "--once")
    [forward] = shared.received
    assert forward.rcpt_tos == ["ana@example.test"] and forward.mail_from == "jobs+1042@example.test"
    assert forward.data.endswith(message.encode().rstrip(b"\r\n")) or message.encode() in forward.data
    msg = email.message_from_bytes(forward.data, policy=email.policy.default)
    assert msg["Resent-To"] == "ana@example.test" and msg["From"] == "Cand <cand@example.org>"
    [shown] = bridge.json("messages", "list")
    assert shown["delivery"] == "forward sent"
    assert [e["purpose"] for e in bridge.json("log")] == ["forward"]


def test_a_reply_that_reached_the_recruiter_directly_is_not_handed_off_again(lite_bridge: Bridge, smtp_peer,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shared = smtp_peer("accept")
    add_account(lite_bridge, shared.host, shared.port, monkeypatch, name="shared", default=True)
    lite_bridge.run("alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana",
                    "--from", "ana@example.test", "--reply-to", "ana.ruiz@mail.example.test")
    to_all = reply("dir1@example.org", "Cand <cand@example.org>",
                   "jobs+1042@example.test, Ana <ana.ruiz@mail.example.test>")
    assert ingest_json(lite_bridge, to_all)["delivery"] == "direct"
    only_us = reply("dir2@example.org", "Cand <cand@example.org>", "jobs+1042@example.test")
    assert ingest_json(lite_bridge, only_us)["delivery"] == "forward queued"
    lite_bridge.run("worker", "--once")
    assert len(shared.received) == 1  # the second only: the first had reached her already


def test_forward_without_database_wide_account_waits_visible(lite_bridge: Bridge) -> None:
    got = ingest_json(lite_bridge, reply("fw2@example.org", "cand@example.org", "jobs+1042@example.test"))
    assert got["delivery"] == "forward not_sent"
    [entry] = lite_bridge.json("log")
    assert entry["purpose"] == "forward" and "--default" in entry["hint"]


def test_none_delivers_nothing_and_unassigned_delivers_on_assignment(lite_bridge: Bridge, smtp_peer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    shared = smtp_peer("accept")
    add_account(lite_bridge, shared.host, shared.port, monkeypatch, name="shared", default=True)
    lite_bridge.run("employee", "add", "--number", "7", "--name", "Quiet", "--email", "q@example.test",
                    "--delivery", "none")
    assert ingest_json(lite_bridge, reply("n1@example.org", "a@example.org", "jobs+7@example.test"))["delivery"] \
        == "none"
    stray = ingest_json(lite_bridge, reply("n2@example.org", "b@example.org", "desk@example.test"))
    assert stray["route"] == "unassigned" and stray["delivery"] == "none"
    lite_bridge.run("unassigned", "assign", str(stray["id"]), "--employee", "1042")
    lite_bridge.run("worker", "--once")
    assert [r.rcpt_tos for r in shared.received] == [["ana@example.test"]]
    bad = lite_bridge.run("employee", "set-delivery", "7", "pigeon", ok=False)
    assert bad.exit_code == 2 and "pigeon" in bad.output


@needs_dovecot
def test_imap_delivery_appends_to_the_inbox_once(lite_bridge: Bridge, dovecot: Dovecot,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    add_imap(lite_bridge, dovecot, monkeypatch)
    add_alias(lite_bridge, smtp=None, imap="mailbox")
    lite_bridge.run("employee", "set-delivery", "1042", "imap")
    message = reply("in1@example.org", "cand@example.org", "jobs+1042@example.test")
    got = ingest_json(lite_bridge, message)
    assert got["delivery"] == "pending"
    lite_bridge.run("worker", "--once")
    assert dovecot.folder_messages("INBOX") == [message.encode()]
    assert b"\\Seen" not in dovecot.folder_flags("INBOX")[0]  # unread for the recruiter
    assert lite_bridge.json("messages", "list")[0]["delivery"] == "delivered"
    with Session(lite_bridge.engine()) as s:  # a retry after a crash finds it there: not appended twice
        row = s.exec(select(InboundMessage)).one()
        row.delivery, row.delivery_next_at = "pending", row.received_at
        s.add(row)
        s.commit()
    lite_bridge.run("worker", "--once")
    assert len(dovecot.folder_messages("INBOX")) == 1


@needs_dovecot
def test_a_dead_deliverers_hand_offs_are_taken_over_once_their_lease_runs_out(
        lite_bridge: Bridge, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imap, "LEASE", dt.timedelta(seconds=1))
    add_imap(lite_bridge, dovecot, monkeypatch)
    add_alias(lite_bridge, smtp=None, imap="mailbox")
    lite_bridge.run("employee", "set-delivery", "1042", "imap")
    ingest_json(lite_bridge, reply("in3@example.org", "cand@example.org", "jobs+1042@example.test"))
    assert sum(map(len, imap._claim(lite_bridge.engine()).values())) == 1  # then its holder dies
    assert imap.run(lite_bridge.engine()) == 0  # the lease still holds
    time.sleep(1.2)
    assert imap.run(lite_bridge.engine()) == 1
    assert len(dovecot.folder_messages("INBOX")) == 1


def test_imap_delivery_without_linked_server_fails_visibly_after_retries(lite_bridge: Bridge) -> None:
    lite_bridge.run("employee", "set-delivery", "1042", "imap")
    ingest_json(lite_bridge, reply("in2@example.org", "cand@example.org", "jobs+1042@example.test"))
    for _ in range(imap.MAX_ATTEMPTS):
        lite_bridge.run("worker", "--once")
        with Session(lite_bridge.engine()) as s:
            row = s.exec(select(InboundMessage)).one()
            row.delivery_next_at = row.received_at
            s.add(row)
            s.commit()
    [shown] = lite_bridge.json("messages", "list")
    assert shown["delivery"] == "failed" and "alias link" in shown["delivery_error"]


def test_acknowledgement_once_to_a_new_candidate_and_never_to_machines(lite_bridge: Bridge, smtp_peer,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    shared = smtp_peer("accept")
    add_account(lite_bridge, shared.host, shared.port, monkeypatch, name="shared", default=True)
    lite_bridge.run("employee", "set-delivery", "1042", "none")
    lite_bridge.run("settings", "set", "acknowledgement", "Thank you, we received your message.")
    to = "jobs+1042@example.test"
    first = ingest_json(lite_bridge, reply("a1@example.org", "New <new@example.org>", to, "Application"))
    ingest_json(lite_bridge, reply("a2@example.org", "new@example.org", to, "Application again"))
    ingest_json(lite_bridge, reply("a3@example.org", "noreply@example.org", to))
    ingest_json(lite_bridge, reply("a4@example.org", "oof@example.org", to, extra="Auto-Submitted: auto-replied\r\n"))
    ingest_json(lite_bridge, reply("a5@example.org", "list@example.org", to, extra="List-Id: <jobs.example.org>\r\n"))
    lite_bridge.run("worker", "--once")
    [ack] = shared.received
    msg = email.message_from_bytes(ack.data, policy=email.policy.default)
    assert ack.rcpt_tos == ["new@example.org"] and msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"] == "<a1@example.org>" and msg["Subject"] == "Thank you for your message"
    assert msg["From"].addresses[0].addr_spec == "jobs+1042@example.test"
    assert first["candidate"] == "new@example.org"


def test_acknowledgement_to_a_new_sender_in_unassigned_when_the_setting_says_so(lite_bridge: Bridge, smtp_peer,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """An application to careers@: through the database-wide account, under its own name and address."""
    shared = smtp_peer("accept")
    lite_bridge.run("smtp", "add", "shared", "--host", shared.host, "--port", str(shared.port), "--security", "none",
                    "--default", "--from-name", "Acme Careers", "--from-address", "careers@example.test")
    lite_bridge.run("settings", "set", "acknowledgement", "Thank you, we received your application.")
    off = ingest_json(lite_bridge, reply("u1@example.org", "Applicant <app1@example.org>", "careers@example.test"))
    assert off["route"] == "unassigned"
    lite_bridge.run("settings", "set", "acknowledge_unassigned", "on")
    ingest_json(lite_bridge, reply("u2@example.org", "Applicant <app2@example.org>", "careers@example.test"))
    ingest_json(lite_bridge, reply("u3@example.org", "app2@example.org", "careers@example.test"))  # once a week
    ingest_json(lite_bridge, reply("u4@example.org", "bot@example.org", "careers@example.test",
                                   extra="Auto-Submitted: auto-generated\r\n"))
    ingest_json(lite_bridge, reply("u5@example.org", "news@example.org", "careers@example.test",
                                   extra="List-Unsubscribe: <mailto:u@example.org>\r\n"))
    lite_bridge.run("worker", "--once")
    [letter] = shared.received
    msg = email.message_from_bytes(letter.data, policy=email.policy.default)
    assert letter.rcpt_tos == ["app2@example.org"] and letter.mail_from == "careers@example.test"
    assert str(msg["From"]) == "Acme Careers <careers@example.test>" and msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"] == "<u2@example.org>" and msg["Subject"] == "Thank you for your message"
    [entry] = [e for e in lite_bridge.json("log") if e["purpose"] == "acknowledgement"]
    assert entry["status"] == "sent" and entry["employee_number"] is None


def test_no_acknowledgement_to_forged_senders_and_never_the_senders_subject(
        lite_bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Backscatter: a spoofed new sender must not get a letter echoing the spam's subject."""
    shared = smtp_peer("accept")
    add_account(lite_bridge, shared.host, shared.port, monkeypatch, name="shared", default=True)
    lite_bridge.run("employee", "set-delivery", "1042", "none")
    lite_bridge.run("settings", "set", "acknowledgement", "Thank you, we received your message.")
    lite_bridge.run("settings", "set", "trusted_authserv_ids", "mx.example.test")
    to = "jobs+1042@example.test"
    ours = "Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=x; dkim=none; dmarc=fail header.from={}\r\n"
    forged = "Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=x\r\n"
    theirs = "Authentication-Results: relay.attacker.example; dmarc=fail\r\n"
    ingest_json(lite_bridge, reply("f1@example.org", "spoofed@bank.example", to, "Cheap pills",
                                   extra=ours.format("bank.example")))
    ingest_json(lite_bridge, reply("f2@example.org", "softfail@example.org", to, extra=forged))
    ingest_json(lite_bridge, reply("f3@example.org", "honest@example.org", to, "Buy now!!!", extra=theirs))
    lite_bridge.run("worker", "--once")
    [ack] = shared.received  # only the one whose failing results came from a server not ours
    msg = email.message_from_bytes(ack.data, policy=email.policy.default)
    assert ack.rcpt_tos == ["honest@example.org"] and msg["Subject"] == "Thank you for your message"


def test_acknowledgements_are_limited_per_hour(lite_bridge: Bridge, smtp_peer,  # noqa: ANN001
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.inbound.after_routing import acknowledgement

    monkeypatch.setattr(acknowledgement, "HOURLY_LIMIT", 2)
    shared = smtp_peer("accept")
    add_account(lite_bridge, shared.host, shared.port, monkeypatch, name="shared", default=True)
    lite_bridge.run("employee", "set-delivery", "1042", "none")
    lite_bridge.run("settings", "set", "acknowledgement", "Thank you, we received your message.")
    for n in range(4):
        ingest_json(lite_bridge, reply(f"h{n}@example.org", f"new{n}@example.org", "jobs+1042@example.test"))
    lite_bridge.run("worker", "--once")
    assert sorted(r.rcpt_tos[0] for r in shared.received) == ["new0@example.org", "new1@example.org"]
