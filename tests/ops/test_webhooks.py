"""Signed webhooks: events reach a real HTTP receiver on loopback that verifies every request with the
standardwebhooks package, are retried with the same webhook-id, and never slow routing.

The outbox and the claims run on SQLite and PostgreSQL (`bridge`); the rest on SQLite.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from bridge.crypto import decrypt
from bridge.ops.webhooks import dispatch, outbox, subscriptions
from models import Webhook, WebhookDelivery, utcnow
from models.db import session_scope
from tests.helpers.bridge import Bridge
from tests.helpers.messages import dsn, reply
from tests.helpers.ports import closed_port
from tests.helpers.setup_steps import add_account, add_alias, send
from tests.helpers.webhook_receiver import Receiver
from tests.servers.smtp_peers import SmtpPeer
from tests.servers.web import Served


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = subscriptions.new_secret()
    monkeypatch.setenv("RB_HOOK_SECRET", value)
    return value


@pytest.fixture
def receiver(secret: str):  # noqa: ANN201 - Iterator[Receiver]
    r = Receiver(secret)
    yield r
    r.stop()


def add_hook(b: Bridge, url: str, *events: str) -> int:
    args = [arg for e in events for arg in ("--event", e)]
    b.run("settings", "set", "webhook_private_targets", "on")  # the receivers listen on loopback
    return int(b.run("webhook", "add", url, "--secret-env", "RB_HOOK_SECRET", *args).stdout)


def ingest(b: Bridge, tmp_path: Path, mid: str, to: str = "jobs+1042@example.test") -> dict:
    path = tmp_path / f"{mid}.eml"
    path.write_text(reply(f"{mid}@example.org", "Cand <cand@example.org>", to))
    return json.loads(b.run("ingest", str(path), "--json").stdout)


def deliveries(b: Bridge, *args: str) -> list[dict]:
    return b.json("webhook", "deliveries", *args)  # type: ignore[return-value]


def make_due(b: Bridge) -> None:
    """Time passes: every pending retry is due now."""
    with session_scope(b.engine()) as s:
        s.exec(update(WebhookDelivery).where(WebhookDelivery.status == "pending")
               .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))


def test_message_routed_on_ingest_reaches_the_receiver_signed(bridge: Bridge, receiver: Receiver,
                                                              tmp_path: Path) -> None:
    hook_id = add_hook(bridge, receiver.url)
    routed = ingest(bridge, tmp_path, "r1")
    assert routed["route"] == "employee"
    [pending] = deliveries(bridge)
    assert (pending["status"], pending["event_type"], pending["webhook"]) == ("pending", "message.routed", hook_id)
    assert receiver.got == []  # routing queues the event; it never calls the receiver

    bridge.run("worker", "--once")
    [got] = receiver.events()
    assert set(got.body) == {"type", "timestamp", "data"} and got.body["type"] == "message.routed"
    assert dt.datetime.fromisoformat(got.body["timestamp"]).tzinfo is not None
    data = got.body["data"]
    assert (data["id"], data["route"], data["employee_number"], data["from"]) == \
        (routed["id"], "employee", 1042, "cand@example.org")
    assert data["subject"] == "Re: Interview" and data["kind"] == "reply"
    [done] = deliveries(bridge)
    assert got.event_id == done["event_id"] and got.event_id.startswith("msg_")
    assert (done["status"], done["attempts"], done["last_status"], done["last_error"]) == ("delivered", 1, 200, None)
    assert done["delivered_at"] is not None
    bridge.run("worker", "--once")
    assert len(receiver.got) == 1  # delivered once


def test_message_assigned_after_unassigned_assign(lite_bridge: Bridge, receiver: Receiver, tmp_path: Path) -> None:
    add_hook(lite_bridge, receiver.url)
    stray = ingest(lite_bridge, tmp_path, "u1", to="careers@example.test")
    assert stray["route"] == "unassigned"
    lite_bridge.run("unassigned", "assign", str(stray["id"]), "--employee", "1042")
    lite_bridge.run("worker", "--once")
    [routed] = receiver.events("message.routed")
    [assigned] = receiver.events("message.assigned")
    assert routed.body["data"]["route"] == "unassigned" and routed.body["data"]["triage"] == "open"
    assert assigned.body["data"]["id"] == stray["id"]
    assert (assigned.body["data"]["route"], assigned.body["data"]["employee_number"],
            assigned.body["data"]["candidate"]) == ("employee", 1042, "cand@example.org")
    assert routed.event_id != assigned.event_id


def test_outbound_sent_then_a_bounce_makes_it_undeliverable(lite_bridge: Bridge, receiver: Receiver, smtp_peer,
                                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    peer: SmtpPeer = smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    add_hook(lite_bridge, receiver.url, "outbound.sent", "outbound.undeliverable")
    mail_id = send(lite_bridge)
    lite_bridge.run("worker", "--once")
    [sent] = receiver.events()
    assert sent.body["type"] == "outbound.sent"
    assert (sent.body["data"]["id"], sent.body["data"]["status"], sent.body["data"]["to"]) == \
        (mail_id, "sent", "cand@example.org")
    assert sent.body["data"]["last_reply"].startswith("250")

    bounce = tmp_path / "bounce.eml"
    bounce.write_text(dsn(sent.body["data"]["message_id"], "cand@example.org"))
    lite_bridge.run("ingest", str(bounce))
    lite_bridge.run("worker", "--once")
    [gone] = receiver.events("outbound.undeliverable")
    assert (gone.body["data"]["id"], gone.body["data"]["status"]) == (mail_id, "undeliverable")
    assert "5.1.1" in gone.body["data"]["last_reply"]
    assert [g.body["type"] for g in receiver.events()] == ["outbound.sent", "outbound.undeliverable"]


def test_outbound_undeliverable_when_the_server_refuses(lite_bridge: Bridge, receiver: Receiver, smtp_peer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    peer: SmtpPeer = smtp_peer("reject_550_user")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    add_hook(lite_bridge, receiver.url)
    mail_id = send(lite_bridge)
    lite_bridge.run("worker", "--once")
    [gone] = receiver.events()
    assert gone.body["type"] == "outbound.undeliverable"
    data = gone.body["data"]
    assert (data["id"], data["status"], data["attempts"]) == (mail_id, "undeliverable", 1)
    assert data["last_reply"].startswith("550") and data["hint"]


def test_event_filter(lite_bridge: Bridge, secret: str, tmp_path: Path) -> None:
    only_sent, every = Receiver(secret), Receiver(secret)
    try:
        add_hook(lite_bridge, only_sent.url, "outbound.sent")
        add_hook(lite_bridge, every.url)
        listed = lite_bridge.json("webhook", "list")
        assert [(h["events"], h["all_events"]) for h in listed] == [(["outbound.sent"], False),
                                                                    (list(outbox.EVENTS), True)]
        ingest(lite_bridge, tmp_path, "f1")
        lite_bridge.run("worker", "--once")
        assert [g.body["type"] for g in every.events()] == ["message.routed"]
        assert only_sent.events() == [] and len(deliveries(lite_bridge)) == 1
    finally:
        only_sent.stop()
        every.stop()


def test_500_then_ok_is_retried_with_the_same_webhook_id(bridge: Bridge, receiver: Receiver, tmp_path: Path) -> None:
    add_hook(bridge, receiver.url)
    receiver.answers = [500]
    ingest(bridge, tmp_path, "e1")
    before = utcnow()
    bridge.run("worker", "--once")
    [failed] = deliveries(bridge)
    assert (failed["status"], failed["attempts"], failed["last_status"]) == ("pending", 1, 500)
    assert failed["last_error"] == "HTTP 500 Internal Server Error"  # its answer ("no") is kept nowhere
    wait = dt.datetime.fromisoformat(failed["next_attempt_at"]) - before
    assert dt.timedelta(seconds=dispatch.BACKOFF_S[0]) <= wait < dt.timedelta(seconds=dispatch.BACKOFF_S[0] + 5)

    bridge.run("worker", "--once")  # not due yet: no second request
    assert len(receiver.got) == 1
    make_due(bridge)
    bridge.run("worker", "--once")
    first, second = receiver.events()
    assert (first.answered, second.answered) == (500, 200)
    assert first.event_id == second.event_id == failed["event_id"]
    assert first.body == second.body
    [done] = deliveries(bridge)
    assert (done["status"], done["attempts"], done["last_status"], done["last_error"]) == ("delivered", 2, 200, None)
    make_due(bridge)
    bridge.run("worker", "--once")
    assert len(receiver.got) == 2


def test_receiver_down_never_slows_routing_and_loses_nothing(lite_bridge: Bridge, secret: str,
                                                             tmp_path: Path) -> None:
    port = closed_port()
    add_hook(lite_bridge, f"http://127.0.0.1:{port}/hooks")
    started = time.monotonic()
    routed = [ingest(lite_bridge, tmp_path, f"d{i}") for i in range(5)]
    assert time.monotonic() - started < 5
    assert {r["route"] for r in routed} == {"employee"}

    started = time.monotonic()
    lite_bridge.run("worker", "--once")
    assert time.monotonic() - started < 5  # a refused connection costs nothing like a timeout
    waiting = deliveries(lite_bridge)
    assert len(waiting) == 5 and {d["status"] for d in waiting} == {"pending"}
    assert all(d["attempts"] == 1 and "could not connect" in d["last_error"] for d in waiting)

    back = Receiver(secret, port)
    try:
        make_due(lite_bridge)
        lite_bridge.run("worker", "--once")
        assert sorted(g.body["data"]["id"] for g in back.events()) == sorted(r["id"] for r in routed)
        assert {g.event_id for g in back.events()} == {d["event_id"] for d in waiting}
        assert {d["status"] for d in deliveries(lite_bridge)} == {"delivered"}
    finally:
        back.stop()


def test_a_receiver_that_never_answers_costs_one_timeout_per_parallel_batch(lite_bridge: Bridge, receiver: Receiver,
                                                                           tmp_path: Path) -> None:
    add_hook(lite_bridge, receiver.url)
    receiver.answers = [3.0] * 16
    started = time.monotonic()
    for i in range(16):
        ingest(lite_bridge, tmp_path, f"t{i}")
    assert time.monotonic() - started < 8 and receiver.got == []  # routing never waits for the receiver

    started = time.monotonic()
    assert dispatch.deliver_due(lite_bridge.engine(), timeout=0.5) == 0
    assert time.monotonic() - started < 0.5 * 16 / 2  # in parallel, not one timeout after another
    waiting = deliveries(lite_bridge)
    assert len(waiting) == 16 and all(d["status"] == "pending" and d["last_error"].startswith("timeout")
                                      for d in waiting)


def test_gives_up_after_the_last_backoff_and_retry_brings_it_back(lite_bridge: Bridge, receiver: Receiver,
                                                                  tmp_path: Path) -> None:
    assert sum(dispatch.BACKOFF_S) / 3600 == pytest.approx(22.7, abs=0.1)
    add_hook(lite_bridge, receiver.url)
    ingest(lite_bridge, tmp_path, "g1")
    with session_scope(lite_bridge.engine()) as s:
        s.exec(update(WebhookDelivery).values(attempts=dispatch.MAX_ATTEMPTS - 1))
    receiver.answers = [503]
    lite_bridge.run("worker", "--once")
    [failed] = deliveries(lite_bridge, "--status", "failed")
    assert failed["attempts"] == dispatch.MAX_ATTEMPTS and failed["next_attempt_at"] is None
    make_due(lite_bridge)
    lite_bridge.run("worker", "--once")
    assert len(receiver.got) == 1  # failed stays failed

    lite_bridge.run("webhook", "retry", str(failed["id"]))
    lite_bridge.run("worker", "--once")
    [done] = deliveries(lite_bridge)
    assert (done["status"], done["attempts"]) == ("delivered", 1)
    assert [g.event_id for g in receiver.events()] == [failed["event_id"]] * 2
    result = lite_bridge.run("webhook", "retry", str(done["id"]), ok=False)
    assert result.exit_code == 1 and "delivered already" in result.stderr


def test_an_event_is_queued_only_with_the_change_it_reports(bridge: Bridge, receiver: Receiver) -> None:
    add_hook(bridge, receiver.url)
    with pytest.raises(RuntimeError), session_scope(bridge.engine()) as s:
        assert outbox.emit(s, "outbound.sent", {"n": 1}) is not None
        raise RuntimeError("the change fails after the event was queued")
    assert deliveries(bridge) == []
    with pytest.raises(ValueError, match="unknown webhook event"), session_scope(bridge.engine()) as s:
        outbox.emit(s, "outbound.deleted", {})


def test_two_deliverers_claim_each_row_once(bridge: Bridge, receiver: Receiver) -> None:
    add_hook(bridge, receiver.url)
    engine = bridge.engine()
    with session_scope(engine) as s:
        ids = [outbox.emit(s, "outbound.sent", {"n": n}) for n in range(60)]
    receiver.answers = [0.02] * 60  # slow enough that the two runs overlap

    claims: list[list[int]] = [[], []]
    gate = threading.Barrier(2)

    def race(slot: int) -> None:
        gate.wait()
        claims[slot] = [c.id for c in dispatch.claim(engine, limit=100)]

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(claims[0]) & set(claims[1]) and len(claims[0]) + len(claims[1]) == 60
    with session_scope(engine) as s:  # let go of the claims: the deliverers race next
        s.exec(update(WebhookDelivery).values(claimed_until=None))

    delivered = [0, 0]

    def deliver(slot: int) -> None:
        gate.wait()
        delivered[slot] = dispatch.deliver_due(engine, limit=10)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(delivered) == 60 and all(delivered), delivered
    assert sorted(g.event_id for g in receiver.events()) == sorted(ids)
    with session_scope(engine) as s:
        rows = s.exec(select(WebhookDelivery)).all()
    assert {(r.status, r.attempts) for r in rows} == {("delivered", 1)}


def test_secret_never_shown_logged_or_stored_in_clear(lite_bridge: Bridge, receiver: Receiver, secret: str,
                                                     tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key_part = secret.removeprefix("whsec_")
    lite_bridge.run("settings", "set", "webhook_private_targets", "on")
    added = lite_bridge.run("webhook", "add", receiver.url, "--secret-env", "RB_HOOK_SECRET")
    down = add_hook(lite_bridge, f"http://127.0.0.1:{closed_port()}/x")
    ingest(lite_bridge, tmp_path, "s1")
    lite_bridge.run("worker", "--once")
    lite_bridge.run("webhook", "test", str(down), ok=False)
    assert len(receiver.events()) == 1
    shown = [lite_bridge.run("webhook", *args).output
             for args in (("list",), ("list", "--json"), ("deliveries",), ("deliveries", "--json"))]
    outputs = [added.output, *shown, caplog.text]
    assert "could not connect" in caplog.text  # the failure is logged, without the secret
    for text in outputs:
        assert key_part not in text
    with session_scope(lite_bridge.engine()) as s:
        stored = s.exec(select(Webhook)).all()
    assert all(decrypt(h.secret).reveal() == secret for h in stored)  # encrypted, not lost
    lite_bridge.engine().dispose()  # every write is in the files now
    for path in tmp_path.glob("rb.db*"):
        assert key_part.encode() not in path.read_bytes(), path.name


def test_bad_url_event_and_secret_are_refused(lite_bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    good = subscriptions.new_secret()
    monkeypatch.setenv("GOOD", good)
    cases = {
        ("ftp://ats.example.com/hook", "GOOD"): "must be http:// or https:// with a host",
        ("https:///no-host", "GOOD"): "with a host",
        ("ats.example.com/hook", "GOOD"): "must be http:// or https://",
        ("https://user:pw@ats.example.com/hook", "GOOD"): "must not hold a user name or password",
        ("https://ats.example.com:99999/hook", "GOOD"): "invalid port",
        ("https://ats.example.com/hook", "UNSET_VAR"): "UNSET_VAR is not set",
    }
    for (url, var), message in cases.items():
        result = lite_bridge.run("webhook", "add", url, "--secret-env", var, ok=False)
        assert result.exit_code == 1 and message in result.stderr, (url, result.stderr)

    result = lite_bridge.run("webhook", "add", "https://ats.example.com/hook", "--secret-env", "GOOD",
                             "--event", "message.routed", "--event", "message.deleted", ok=False)
    assert result.exit_code == 1 and "unknown event 'message.deleted'" in result.stderr
    assert "outbound.undeliverable" in result.stderr

    for bad in ("correct horse battery staple", "whsec_not base64!", "whsec_" + "c2hvcnQ=", good + "x"):
        monkeypatch.setenv("BAD", bad)
        result = lite_bridge.run("webhook", "add", "https://ats.example.com/hook", "--secret-env", "BAD", ok=False)
        assert result.exit_code == 1 and "webhook new-secret" in result.stderr, result.stderr
        assert bad not in result.stderr
    assert lite_bridge.json("webhook", "list") == []

    made = lite_bridge.run("webhook", "new-secret").stdout.strip()
    assert subscriptions.check_secret(made) == made and made != lite_bridge.run("webhook", "new-secret").stdout.strip()


def test_test_command_and_remove(lite_bridge: Bridge, receiver: Receiver) -> None:
    hook_id = add_hook(lite_bridge, receiver.url, "outbound.sent")
    ok = lite_bridge.run("webhook", "test", str(hook_id))
    assert "Status: OK (HTTP 200" in ok.stdout
    [ping] = receiver.events()
    assert ping.body["type"] == "webhook.test" and ping.body["data"] == {"webhook_id": hook_id}

    receiver.answers = [500]
    refused = lite_bridge.run("webhook", "test", str(hook_id), ok=False)
    assert refused.exit_code == 1 and "HTTP 500" in refused.stderr
    assert [d["status"] for d in deliveries(lite_bridge)] == ["failed", "delivered"]  # a test is tried once

    missing = lite_bridge.run("webhook", "remove", "99", ok=False)
    assert missing.exit_code == 1 and "no webhook 99" in missing.stderr
    assert "2 deliveries" in lite_bridge.run("webhook", "remove", str(hook_id)).stdout
    assert lite_bridge.json("webhook", "list") == [] and deliveries(lite_bridge) == []


def test_serve_delivers_message_routed_for_mail_received_by_smtp(web: Served, secret: str) -> None:
    receiver = Receiver(secret)
    try:
        add_hook(web.bridge, receiver.url, "message.routed")
        with smtplib.SMTP("127.0.0.1", web.smtp_port, timeout=10) as smtp:
            smtp.sendmail("cand@example.org", ["jobs+1042@example.test"],
                          reply("serve1@example.org", "Cand <cand@example.org>", "jobs+1042@example.test"))
        got = web.wait_for(lambda: receiver.events(), timeout=10, what="a verified message.routed")
        [event] = got
        assert event.body["type"] == "message.routed"
        assert (event.body["data"]["route"], event.body["data"]["employee_number"], event.body["data"]["source"]) == \
            ("employee", 1042, "smtp")
        web.wait_for(lambda: deliveries(web.bridge)[0]["status"] == "delivered", what="the delivery recorded")
    finally:
        receiver.stop()


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]:8080/hook",
                                 "http://[::ffff:169.254.169.254]/hook", "http://0.0.0.0/hook", "http://[fd00:ec2::254]/"])
def test_link_local_and_metadata_targets_are_never_taken(lite_bridge: Bridge, secret: str, url: str) -> None:
    lite_bridge.run("settings", "set", "webhook_private_targets", "on")
    refused = lite_bridge.run("webhook", "add", url, "--secret-env", "RB_HOOK_SECRET", ok=False)
    assert refused.exit_code == 1 and ("link-local or cloud metadata" in refused.stderr
                                       or "not an address a receiver listens on" in refused.stderr), refused.stderr
    assert lite_bridge.json("webhook", "list") == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/hook",
                                 "http://192.168.0.10/hook", "http://[::1]/hook"])
def test_loopback_and_private_targets_need_the_setting(lite_bridge: Bridge, secret: str, url: str) -> None:
    refused = lite_bridge.run("webhook", "add", url, "--secret-env", "RB_HOOK_SECRET", ok=False)
    assert refused.exit_code == 1 and "settings set webhook_private_targets on" in refused.stderr
    lite_bridge.run("settings", "set", "webhook_private_targets", "on")
    assert lite_bridge.run("webhook", "add", url, "--secret-env", "RB_HOOK_SECRET").stdout.strip().isdigit()


def test_a_target_refused_now_is_not_posted_to(lite_bridge: Bridge, receiver: Receiver, tmp_path: Path) -> None:
    add_hook(lite_bridge, receiver.url)  # allowed when added
    lite_bridge.run("settings", "set", "webhook_private_targets", "off")  # then the admin closes loopback
    ingest(lite_bridge, tmp_path, "r1")
    lite_bridge.run("worker", "--once")
    [refused] = deliveries(lite_bridge)
    assert refused["status"] == "pending"
    assert refused["last_error"].startswith("refused: 127.0.0.1 is a loopback or private address")
    assert receiver.got == []


def test_a_slow_receiver_keeps_its_claim_and_a_dead_deliverers_is_taken_over(
        lite_bridge: Bridge, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases (bridge.leases): renewed while the POST runs, free again once their holder stopped renewing."""
    monkeypatch.setattr(dispatch, "LEASE", dt.timedelta(seconds=1.2))  # renewed every 0.4 s while held
    add_hook(lite_bridge, receiver.url)
    engine = lite_bridge.engine()
    with session_scope(engine) as s:
        slow_id = outbox.emit(s, "outbound.sent", {"n": 1})
    receiver.answers = [2.5]  # answers after twice the lease: a lease not renewed would have run out
    first = threading.Thread(target=dispatch.deliver_due, args=(engine,), kwargs={"timeout": 10})
    first.start()
    time.sleep(1.8)
    assert dispatch.claim(engine) == [], "a second deliverer took a delivery whose holder was still posting it"
    first.join(10)
    assert [g.event_id for g in receiver.events()] == [deliveries(lite_bridge)[0]["event_id"]]

    with session_scope(engine) as s:
        outbox.emit(s, "outbound.sent", {"n": 2})
    [dead] = dispatch.claim(engine)  # claimed, then its deliverer dies: nobody renews
    assert dispatch.deliver_due(engine) == 0  # its lease still holds
    time.sleep(1.3)
    assert dispatch.deliver_due(engine) == 1
    assert len(receiver.events()) == 2 and dead.id != slow_id
