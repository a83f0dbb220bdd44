"""Erasing one candidate (`candidate erase`) on SQLite and PostgreSQL: nothing of them is left in any table
(nor in the SQLite file after a VACUUM), the other candidate's mail stays, mail still to go out to them is
cancelled (also under a worker holding it), the receipt and audit entry hold counts and no address, and
the ATS's webhook event is blanked once delivered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bridge import audit
from bridge.net.diagnosis import Diagnosis, Failure
from bridge.ops.webhooks import subscriptions
from bridge.outbound import claims
from bridge.privacy.selection import select_person
from models import AuditEvent, ErasureReceipt, InboundMessage, WebhookDelivery
from tests.helpers.bridge import Bridge
from tests.helpers.candidate_data import LENA, LENA_PRIVATE, LENA_WORDS, OTHER, OTHER_WORD, found_in_tables, stage
from tests.helpers.setup_steps import add_account, add_alias
from tests.helpers.webhook_receiver import Receiver

EXPECTED = {"inbound": 2, "bounces": 1, "mail_log": 1, "forwards": 2, "cancelled": 1, "delivery_attempts": 3,
            "conversations": 2, "candidates": 2, "webhook_deliveries": 0, "alerts_redacted": 0}


def erase(b: Bridge, address: str, *args: str) -> dict:
    return json.loads(b.run("candidate", "erase", address, *args, "--json").stdout)


def test_erase_leaves_nothing_of_them_in_any_table_and_cancels_their_queued_mail(
        bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    peer, _staged = stage(bridge, smtp_peer, monkeypatch)
    bridge.run("send", "--employee", "1042", "--to", LENA, "--subject", "Zephyrquartz offer", "--body", "Offer.")
    before = found_in_tables(bridge.engine())
    assert {hit.split(": ")[1] for hit in before} == {LENA, LENA_PRIVATE, *LENA_WORDS}

    dry = erase(bridge, LENA_PRIVATE.upper(), "--dry-run")  # her other address, as typed: the same person
    assert (dry["dry_run"], dry["receipt_id"], dry["counts"]) == (True, None, EXPECTED)
    assert found_in_tables(bridge.engine()) == before

    done = erase(bridge, LENA)
    assert done["counts"] == EXPECTED and done["receipt_id"] and not done["dry_run"]
    assert found_in_tables(bridge.engine()) == []
    others = found_in_tables(bridge.engine(), (OTHER, OTHER_WORD))  # Omar's mail is all there
    assert {"inbound_message.raw: plumbagoline", "outbound_message.to_addr: omar@else.example",
            "candidate.email: omar@else.example"} <= set(others)
    assert [e["to"] for e in bridge.json("log") if e["purpose"] == "message"] == [OTHER]

    received = len(peer.received)
    bridge.run("worker", "--once")  # the cancelled message is gone: nothing more reaches her
    assert len(peer.received) == received
    assert all(LENA not in rcpt for item in peer.received[received:] for rcpt in item.rcpt_tos)

    with Session(bridge.engine()) as s:
        receipt = s.get(ErasureReceipt, done["receipt_id"])
        entry = s.exec(select(AuditEvent).where(AuditEvent.action == "erase")).one()
    assert receipt.address_hash == audit.candidate_ref(LENA) and json.loads(receipt.counts) == EXPECTED
    assert receipt.actor.startswith("command") and json.loads(receipt.imap) == {}
    assert entry.target == f"candidate {receipt.address_hash[:16]}" and json.loads(entry.detail)["inbound"] == 2
    for kept in (receipt.actor, receipt.counts, entry.target, entry.detail):
        assert "lena" not in kept.lower() and "cand.example" not in kept


def test_nothing_stored_gives_a_receipt_with_zeros_and_erasing_again_is_harmless(lite_bridge: Bridge) -> None:
    first = lite_bridge.run("candidate", "erase", "nobody@example.org")
    assert "Nothing was stored of this address. Receipt 1." in first.stdout
    again = erase(lite_bridge, "Nobody@Example.org")
    assert (again["total"], again["erased_before"], again["receipt_id"]) == (0, 1, 2)
    assert set(again["counts"].values()) == {0}
    for bad in ("not-an-address", "a@b@example.org", "Ana <ana@example.org>"):
        refused = lite_bridge.run("candidate", "erase", bad, ok=False)
        assert refused.exit_code == 1 and refused.stderr.startswith("error: address")
    with Session(lite_bridge.engine()) as s:
        assert len(s.exec(select(ErasureReceipt)).all()) == 2


def test_a_worker_holding_their_message_when_it_is_erased_records_nothing_and_carries_on(
        bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    peer = smtp_peer("accept")
    add_account(bridge, peer.host, peer.port, monkeypatch)
    add_alias(bridge)
    for to in (LENA, LENA, LENA, OTHER):
        subject = "Zephyrquartz" if to == LENA else "Plumbagoline"
        bridge.run("send", "--employee", "1042", "--to", to, "--subject", subject, "--body", "Hello")
    held = claims.claim_batch(bridge.engine())  # a worker took them and is talking to the server
    assert len(held) == 4
    assert erase(bridge, LENA)["counts"]["cancelled"] == 3
    lena = [c for c in held if c.to_addr == LENA]
    claims.record_sent(bridge.engine(), lena[0], 250, "2.0.0 Ok")
    later = Failure(kind="reply", stage="data", code=451, text="4.3.0 later")
    assert claims.record_failure(bridge.engine(), lena[1], later, Diagnosis(True, "try later")) == "cancelled"
    claims.record_not_sent(bridge.engine(), lena[2], "no account", "add one")
    claims.record_sent(bridge.engine(), next(c for c in held if c.to_addr == OTHER), 250, "2.0.0 Ok")
    assert found_in_tables(bridge.engine()) == []
    assert [(e["to"], e["status"]) for e in bridge.json("log")] == [(OTHER, "sent")]


def _file_bytes(database: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (database, database.with_name(database.name + "-wal")) if p.exists())


def test_the_sqlite_file_holds_nothing_of_them_after_erase_and_vacuum(
        lite_bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # noqa: ANN001
    engine = lite_bridge.engine()
    stage(lite_bridge, smtp_peer, monkeypatch)  # the search index (inbound_search) holds their words too
    lite_bridge.run("worker", "--once")  # reply texts and attachment names filled: indexed as well
    database = tmp_path / "rb.db"
    needles = [n.encode() for n in (LENA, LENA_PRIVATE, *LENA_WORDS)]
    needles += [n.capitalize() for n in needles]  # as written in the subject and body, too
    assert all(n.lower() in _file_bytes(database).lower() for n in needles)

    erase(lite_bridge, LENA)
    with engine.connect() as connection:
        connection.exec_driver_sql("VACUUM")
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    stored = _file_bytes(database)
    assert [n for n in needles if n in stored or n.lower() in stored.lower()] == []
    assert OTHER_WORD.encode() in stored.lower()  # the other candidate's mail is still there
    with engine.connect() as connection:
        def hits(word: str) -> int:
            return connection.execute(text("SELECT count(*) FROM inbound_search WHERE inbound_search MATCH :w"),
                                      {"w": word}).scalar()
        assert hits("plumbagoline") == 1 and [w for w in LENA_WORDS if hits(w)] == []


def test_the_ats_is_told_and_the_event_loses_the_address_once_delivered(
        bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = subscriptions.new_secret()
    monkeypatch.setenv("RB_HOOK_SECRET", secret)
    receiver = Receiver(secret)
    try:
        bridge.run("settings", "set", "webhook_private_targets", "on")
        bridge.run("webhook", "add", receiver.url, "--secret-env", "RB_HOOK_SECRET")
        entry = int(bridge.run("send", "--employee", "1042", "--to", LENA, "--subject", "Zephyrquartz",
                               "--body", "Hi").stdout)  # no SMTP account: it waits as not_sent
        with Session(bridge.engine()) as s:  # an event naming her entry by its id alone waits in the outbox
            s.add(WebhookDelivery(webhook_id=1, event_id="msg_x", event_type="outbound.sent",
                                  payload=json.dumps({"type": "outbound.sent", "data": {"id": entry}})))
            s.commit()
        done = erase(bridge, LENA)
        assert (done["counts"]["webhook_deliveries"], done["counts"]["mail_log"]) == (1, 1)
        bridge.run("worker", "--once")
        [event] = receiver.events("candidate.erased")
        assert event.body["data"] == {"address": LENA, "receipt_id": done["receipt_id"], "counts": done["counts"],
                                      "imap": {}, "at": done["at"]}
    finally:
        receiver.stop()
    with Session(bridge.engine()) as s:
        [stored] = s.exec(select(WebhookDelivery)).all()
    assert stored.status == "delivered" and json.loads(stored.payload)["data"]["receipt_id"] == done["receipt_id"]
    assert found_in_tables(bridge.engine()) == []


def test_the_envelope_sender_counts_and_the_look_under_the_lock_takes_up_where_the_first_ended(
        bridge: Bridge) -> None:
    """Mail whose envelope sender is theirs (the header From another's) is theirs. The look under the write
    lock reads again only what was stored since the first look, and leaves out what is gone meanwhile."""
    def stored(key: str, envelope: str) -> int:
        with Session(bridge.engine()) as s:
            row = InboundMessage(dedup_key=key, raw=b"From: list@else.example\r\n\r\nhi\r\n", size=30, source="smtp",
                                 envelope_from=envelope, from_addr="list@else.example")
            s.add(row)
            s.commit()
            return row.id

    first_id = stored("e1", LENA.upper())
    with Session(bridge.engine()) as s:
        first = select_person(s, LENA)
    assert first.inbound_ids == [first_id]
    later_id = stored("e2", LENA)
    with Session(bridge.engine()) as s:
        s.delete(s.get(InboundMessage, first_id))
        s.commit()
        again = select_person(s, LENA, again=first)
    assert again.inbound_ids == [later_id]
    assert erase(bridge, LENA)["counts"]["inbound"] == 1
    assert found_in_tables(bridge.engine()) == []
