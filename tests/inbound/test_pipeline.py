"""The inbound pipeline through `replybridge ingest`, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bridge.inbound import pipeline, raw_store
from models import InboundMessage, OutboundMessage
from tests.helpers.at_once import errors_of
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import ingest_json
from tests.helpers.messages import dsn, reply
from tests.helpers.ports import closed_port
from tests.helpers.setup_steps import add_alias, only_entry


def queue_one(b: Bridge, to: str = "cand@example.org") -> dict:
    add_alias(b, smtp=None)
    b.run("send", "--employee", "1042", "--to", to, "--subject", "Interview", "--body", "Hello")
    return only_entry(b)


def test_reply_threads_then_duplicates_are_stored_once(bridge: Bridge) -> None:
    sent = queue_one(bridge)
    got = ingest_json(bridge, reply("c1@example.org", "Cand <cand@example.org>", "jobs@example.test",
                                    in_reply_to=sent["message_id"]))
    assert (got["route"], got["employee_number"], got["kind"], got["candidate"]) == \
        ("employee", 1042, "reply", "cand@example.org")
    assert got["rule"] == "thread" and got["source"] == "pipe" and not got["duplicate"]
    again = ingest_json(bridge, reply("c1@example.org", "cand@example.org", "jobs@example.test",
                                      in_reply_to=sent["message_id"]))
    assert again["duplicate"] and again["id"] == got["id"]
    assert len(bridge.json("messages", "list")) == 1


def test_unassigned_triage_assign_dismiss_restore(bridge: Bridge, tmp_path: Path) -> None:
    bridge.run("employee", "add", "--number", "3055", "--name", "Cy", "--email", "cy@example.test", "--inactive")
    files = []
    for n, to in enumerate(("jobs+3055@example.test", "nobody@example.test", "jobs+9999@example.test")):
        path = tmp_path / f"m{n}.eml"
        path.write_text(reply(f"u{n}@example.net", f"new{n}@example.net", to, f"Hello {n}"), newline="")
        files.append(str(path))
    got = json.loads(bridge.run("ingest", *files, "--json").stdout)
    assert [g["route"] for g in got] == ["unassigned"] * 3
    assert "inactive" in got[0]["reason"] and "no rule matched" in got[1]["reason"]
    assert "no employee number 9999" in got[2]["reason"]
    assert len(bridge.json("unassigned", "list")) == 3

    bridge.run("unassigned", "assign", str(got[1]["id"]), "--employee", "1042")
    bridge.run("unassigned", "dismiss", str(got[2]["id"]))
    assert [m["id"] for m in bridge.json("unassigned", "list")] == [got[0]["id"]]
    bad = bridge.run("unassigned", "assign", str(got[1]["id"]), "--employee", "1042", ok=False)
    assert bad.exit_code == 1 and "not an open unassigned message" in bad.stderr
    bridge.run("unassigned", "restore", str(got[2]["id"]))
    assert len(bridge.json("unassigned", "list")) == 2

    # a numbered address routes, but does not make the sender a candidate (anyone can write to it) ...
    stranger = ingest_json(bridge, reply("u8@example.net", "new0@example.net", "nobody@example.test", "Again"))
    assert stranger["route"] == "unassigned" and stranger["candidate"] is None
    bridge.run("unassigned", "dismiss", str(stranger["id"]))
    # ... a person's assignment does: their next message routes to 1042 without a numbered address
    nxt = ingest_json(bridge, reply("u9@example.net", "new1@example.net", "nobody@example.test", "Again"))
    assert (nxt["route"], nxt["employee_number"], nxt["rule"]) == ("employee", 1042, "known_sender")
    # after a configuration fix, reroute: employee 9999 now exists
    bridge.run("employee", "add", "--number", "9999", "--name", "Neu", "--email", "neu@example.test")
    bridge.run("messages", "reroute", str(got[2]["id"]))
    assert bridge.json("messages", "list", "--employee", "9999")[0]["id"] == got[2]["id"]


def mark_sent(b: Bridge) -> None:
    with Session(b.engine()) as s:
        m = s.exec(select(OutboundMessage)).one()
        m.status = "sent"
        s.add(m)
        s.commit()


def test_bounce_marks_the_sent_message_undeliverable(bridge: Bridge) -> None:
    sent = queue_one(bridge)
    mark_sent(bridge)
    got = ingest_json(bridge, dsn(sent["message_id"], "cand@example.org"))
    assert (got["kind"], got["route"], got["outbound_id"]) == ("bounce", "bounce", sent["id"])
    entry = only_entry(bridge)
    assert entry["status"] == "undeliverable"
    assert "5.1.1" in entry["last_reply"] and "does not exist" in entry["hint"]
    assert bridge.json("unassigned", "list") == []


def test_delayed_notice_leaves_the_message_deliverable(lite_bridge: Bridge) -> None:
    sent = queue_one(lite_bridge)
    mark_sent(lite_bridge)
    got = ingest_json(lite_bridge, dsn(sent["message_id"], "cand@example.org", action="delayed", status="4.4.1",
                                       diag="451 4.4.1 connection timed out, will retry"))
    assert got["kind"] == "bounce" and "stays deliverable" in got["reason"]
    assert only_entry(lite_bridge)["status"] == "sent"


def test_expired_notice_makes_the_message_undeliverable(lite_bridge: Bridge) -> None:
    """The sending server gave up after retrying: not delivered, though the address may be fine."""
    sent = queue_one(lite_bridge)
    mark_sent(lite_bridge)
    got = ingest_json(lite_bridge, dsn(sent["message_id"], "cand@example.org", action="failed", status="4.4.7",
                                       diag="Delivery time expired: retry timeout exceeded"))
    assert got["kind"] == "bounce" and "undeliverable" in got["reason"]
    assert only_entry(lite_bridge)["status"] == "undeliverable"


def test_auto_reply_routes_like_a_reply_and_is_flagged_as_automatic(lite_bridge: Bridge) -> None:
    got = ingest_json(lite_bridge, reply("oof@example.org", "cand@example.org", "jobs+1042@example.test",
                                         "Automatic reply: Interview", extra="Auto-Submitted: auto-replied\r\n",
                                         body="I am out of the office until Monday.\r\n"))
    assert (got["kind"], got["route"], got["employee_number"]) == ("auto_reply", "employee", 1042)


def test_stored_but_not_routed_is_finished_by_the_worker(bridge: Bridge) -> None:
    raw = reply("crash@example.org", "cand@example.org", "jobs+1042@example.test").encode()
    stored = raw_store.store(bridge.engine(), raw_store.Incoming(raw, "pipe"))  # the process dies here
    assert bridge.json("messages", "list") == []  # not routed yet: not listed
    bridge.run("worker", "--once")
    [m] = bridge.json("messages", "list")
    assert (m["id"], m["route"], m["employee_number"]) == (stored.id, "employee", 1042)
    with Session(bridge.engine()) as s:
        assert s.get(InboundMessage, stored.id).raw == raw


def test_dry_run_explain_stores_nothing(lite_bridge: Bridge) -> None:
    out = lite_bridge.run("ingest", "--dry-run", "--explain", stdin=reply("x@example.org", "new@example.org",
                                                                          "jobs+1042@example.test")).stdout
    assert "employee" in out and "MATCH numbered" in out and "no    thread" in out
    assert lite_bridge.json("messages", "list") == []
    explained = json.loads(lite_bridge.run("ingest", "--dry-run", "--explain", "--json",
                                           stdin=reply("x@example.org", "new@example.org", "a@example.test")).stdout)
    assert explained["route"] == "unassigned" and len(explained["verdicts"]) == 6


def test_pipe_errors(lite_bridge: Bridge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = lite_bridge.run("ingest", "-", stdin="", ok=False)
    assert empty.exit_code == 1 and "holds no message" in empty.stderr
    missing = lite_bridge.run("ingest", str(tmp_path / "nope.eml"), ok=False)
    assert missing.exit_code == 1 and "cannot read" in missing.stderr
    from models import db
    monkeypatch.setenv("REPLYBRIDGE_DATABASE_URL", f"postgresql+psycopg://u:pw@127.0.0.1:{closed_port()}/x")
    db.shared_engine.cache_clear()
    down = lite_bridge.run("ingest", "-", stdin=reply("d@example.org", "a@example.org", "b@example.test"), ok=False)
    assert down.exit_code == 75 and "tries again" in down.stderr and ":pw@" not in down.stderr


def test_thread_reply_from_a_new_address_is_flagged_until_confirmed(lite_bridge: Bridge) -> None:
    sent = queue_one(lite_bridge)
    got = ingest_json(lite_bridge, reply("p1@example.net", "cand.private@example.net", "jobs@example.test",
                                         in_reply_to=sent["message_id"]))
    assert (got["route"], got["employee_number"], got["flagged"], got["candidate"]) == \
        ("employee", 1042, True, None)
    assert "confirm" in got["flag_reason"]
    nxt = ingest_json(lite_bridge, reply("p2@example.net", "cand.private@example.net", "jobs@example.test", "Hi"))
    assert nxt["route"] == "unassigned"  # not attached: a stranger still
    lite_bridge.run("messages", "confirm-sender", str(got["id"]))
    again = ingest_json(lite_bridge, reply("p3@example.net", "cand.private@example.net", "jobs@example.test", "Hi"))
    assert (again["route"], again["employee_number"], again["rule"]) == ("employee", 1042, "known_sender")
    bad = lite_bridge.run("messages", "confirm-sender", str(again["id"]), ok=False)
    assert bad.exit_code == 1 and "no sender waiting" in bad.stderr


def test_two_routers_racing_route_once_and_forward_once(bridge: Bridge) -> None:
    """The worker and the routing process may reach one stored message together: one decision, one forward."""
    import threading

    raw = reply("race@example.org", "cand@example.org", "jobs+1042@example.test").encode()
    stored = raw_store.store(bridge.engine(), raw_store.Incoming(raw, "pipe"))
    barrier = threading.Barrier(4)

    def route() -> None:
        barrier.wait()
        pipeline.process(bridge.engine(), stored.id)
    assert errors_of(route, 4, timeout=30) == []
    assert [e["purpose"] for e in bridge.json("log")] == ["forward"]


def _reply_texts(b: Bridge) -> dict[int, str | None]:
    with Session(b.engine()) as s:
        return dict(s.exec(select(InboundMessage.id, InboundMessage.reply_text)).all())


def test_a_backlog_routes_in_batches_with_the_same_decisions_and_reply_texts_after(bridge: Bridge) -> None:
    """route_batch decides as `process` does, message by message; the reply texts come after the routing."""
    sent = queue_one(bridge)
    raws = [reply(f"b{n}@example.org", f"cand{n}@example.org", "jobs+1042@example.test" if n % 3 == 0 else
                  "jobs@example.test", in_reply_to=sent["message_id"] if n % 3 == 1 else "",
                  body=f"Yes, Monday {n} works.\r\n\r\nOn Fri, Ana wrote:\r\n> Could you come?\r\n").encode()
            for n in range(9)]
    ids = [s.id for s in raw_store.store_many(bridge.engine(), [raw_store.Incoming(r, "smtp") for r in raws])]
    later: list[int] = []
    assert pipeline.finish_unrouted(bridge.engine(), texts_later=later) == 9 and sorted(later) == ids
    listed = {m["id"]: m for m in bridge.json("messages", "list")}
    assert [listed[i]["route"] for i in ids] == ["employee", "employee", "unassigned"] * 3
    assert [listed[i]["rule"] for i in ids[:2]] == ["numbered", "thread"]
    assert set(_reply_texts(bridge).values()) == {None}  # not read yet: routing needs no body
    shown = json.loads(bridge.run("unassigned", "show", str(ids[2]), "--json").stdout)
    assert shown["text"] == "Yes, Monday 2 works."  # meanwhile read from the raw bytes
    pipeline.fill_reply_texts(bridge.engine(), later)
    assert [_reply_texts(bridge)[i] for i in ids] == [f"Yes, Monday {n} works." for n in range(9)]
    with Session(bridge.engine()) as s:  # the forwards to the recruiter, one each
        forwards = s.exec(select(OutboundMessage.inbound_id).where(OutboundMessage.purpose == "forward")).all()
    assert sorted(forwards) == [i for n, i in enumerate(ids) if n % 3 != 2]


def test_a_batch_whose_write_fails_routes_each_on_its_own(lite_bridge: Bridge,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    raws = [reply(f"w{n}@example.org", f"c{n}@example.org", "jobs+1042@example.test").encode() for n in range(3)]
    ids = [s.id for s in raw_store.store_many(lite_bridge.engine(), [raw_store.Incoming(r, "smtp") for r in raws])]
    real = pipeline._apply

    def breaks_on_the_second(session: Session, row: InboundMessage, outcome: pipeline.Outcome) -> None:
        if row.id == ids[1]:
            raise RuntimeError("a bug in applying this one decision")
        real(session, row, outcome)

    monkeypatch.setattr(pipeline, "_apply", breaks_on_the_second)
    assert pipeline.route_batch(lite_bridge.engine(), ids) == [ids[0], ids[2]]  # the others are not held up
    with Session(lite_bridge.engine()) as s:
        failed = s.get(InboundMessage, ids[1])
    assert failed.routed_at is None and failed.route_attempts == 1 and "RuntimeError" in failed.route_error


def test_a_fault_of_ours_keeps_the_message_queued_and_one_after_storing_does_not(
        lite_bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    """An MTA bounces a pipe's message on any exit but 75 (and 71): a bug before the commit must not return a
    candidate's reply to them, and one after it must not have the MTA deliver it again."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a fault injected into the code, not the message")

    message = reply("f1@example.org", "cand@example.org", "jobs+1042@example.test")
    with monkeypatch.context() as patched:
        patched.setattr(raw_store, "store_many", broken)
        before = lite_bridge.run("ingest", "-", stdin=message, ok=False)
    assert before.exit_code == 75 and "RuntimeError" in before.stderr and "tries again" in before.stderr
    with Session(lite_bridge.engine()) as session:
        assert session.exec(select(InboundMessage)).all() == []
    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "route_stored", broken)
        after = lite_bridge.run("ingest", "-", stdin=message)
    assert "stored as #" in after.stderr and "the worker routes it" in after.stderr
    with Session(lite_bridge.engine()) as session:
        assert [(m.message_id, m.route) for m in session.exec(select(InboundMessage))] == [("<f1@example.org>", None)]
