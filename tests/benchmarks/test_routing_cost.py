"""What routing a stored message costs, and that it does not grow with the database (pytest -m benchmark).

Two thousand fresh messages, mixed as real mail comes (numbered replies, replies in a thread we started,
mail for no one, auto-replies), are routed by the routing process's own call (`finish_unrouted`) with
1,000 messages stored, then again with 1,000,000 stored. Routing here is everything from the stored raw
bytes to the committed decision: parse, classify, route, and the steps after routing (the forward to the
recruiter queued, the webhook event). The reply text, which the routing process reads after routing once
nothing waits to be routed, is timed apart and printed beside. The cost of a message is the time of a
routing pass divided by the messages it routed; the median over the passes is the figure. Goals, the
issue's: at most 1 ms, and at 1,000,000 stored at most 1.2x the cost at 1,000; on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from bridge.inbound import pipeline, raw_store
from models import Candidate, Conversation, Employee, InboundMessage, OutboundMessage
from tests.benchmarks import table
from tests.helpers.bridge import Bridge

pytestmark = pytest.mark.benchmark

FRESH, SMALL, LARGE = 2_000, 1_000, 1_000_000
GOAL_MS, GOAL_GROWTH = 1.0, 1.2
THREADS = 200  # conversations with a message we sent, for thread replies to find
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def _fresh(n: int, round_: str) -> bytes:
    """The mix: 4 in 10 to a numbered address, 3 replies in a thread we started (from its candidate),
    2 for no one, 1 auto-reply to a numbered address."""
    kind = n % 10
    to = "jobs+9999@example.test" if kind in (7, 8) else "jobs@example.test" if kind in (4, 5, 6) \
        else "jobs+1042@example.test"
    t = n % THREADS
    sender = f"c{t}@cand{t % 50}.example" if kind in (4, 5, 6) else f"new{n}@applicants.example"
    in_thread = kind in (4, 5, 6)
    thread = f"In-Reply-To: <sent{t}@example.test>\r\nReferences: <sent{t}@example.test>\r\n" if in_thread else ""
    auto = "Auto-Submitted: auto-replied\r\nSubject: Out of office\r\n" if kind == 9 else "Subject: Re: Interview\r\n"
    return (f"From: Cand {n} <{sender}>\r\nTo: {to}\r\n{auto}{thread}"
            f"Message-ID: <{round_}-{n}@cand.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nThank you, Monday at 10 works for me.\r\n\r\n"
            f"On Fri, Ana wrote:\r\n> Could you come in on Monday?\r\n").encode()


def _threads(engine: Engine) -> None:
    """Conversations of employee 1042 with a sent message each, as `send` leaves them."""
    with engine.begin() as conn:
        employee = conn.execute(select(Employee.id).where(Employee.number == 1042)).scalar_one()
        conn.execute(insert(Candidate), [{"email": f"c{i}@cand{i % 50}.example", "created_at": NOW}
                                         for i in range(THREADS)])
        candidates = conn.execute(select(Candidate.id).order_by(Candidate.id)).scalars().all()
        conn.execute(insert(Conversation), [{"employee_id": employee, "candidate_id": c, "created_at": NOW}
                                            for c in candidates])
        conversations = conn.execute(select(Conversation.id).order_by(Conversation.id)).scalars().all()
        conn.execute(insert(OutboundMessage), [
            {"message_id": f"<sent{i}@example.test>", "employee_id": employee, "conversation_id": c,
             "from_addr": "jobs+1042@example.test", "envelope_from": "jobs+1042@example.test",
             "to_addr": f"c{i}@cand{i % 50}.example", "subject": "Interview", "raw": b"x", "status": "sent",
             "next_attempt_at": NOW, "created_at": NOW} for i, c in enumerate(conversations)])


def _fill(engine: Engine, upto: int) -> None:
    """Routed messages until `upto` are stored, written the fast way (this is the set-up, not the figure)."""
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(InboundMessage)).scalar_one()
    for start in range(have, upto, 20_000):
        rows = [{"dedup_key": f"<old{i}@past.example>", "message_id": f"<old{i}@past.example>",
                 "raw": b"From: a@past.example\r\nSubject: old\r\n\r\nold\r\n", "size": 40, "source": "smtp",
                 "envelope_to": "[]", "received_at": NOW, "from_addr": f"p{i % 90_000}@past.example",
                 "kind": "reply", "route": "unassigned", "rule": "none", "reason": "old", "triage": "dismissed",
                 "routed_at": NOW, "delivery": "none", "flagged": False, "delivery_attempts": 0,
                 "route_attempts": 0} for i in range(start, min(upto, start + 20_000))]
        with engine.begin() as conn:
            conn.execute(insert(InboundMessage), rows)
    # the set-up's own write-ahead log is not the routing's to write back, nor PostgreSQL's first look at
    # a table grown by a million rows (autovacuum would ANALYZE it soon after)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)" if engine.dialect.name == "sqlite"
                             else "VACUUM ANALYZE inbound_message")


def _route_fresh(engine: Engine, round_: str, count: int = FRESH) -> tuple[list[float], float]:
    """Store FRESH messages, then route them as the routing process does (the reply texts after, once nothing
    waits); ms a message per pass, and ms a message for reading the reply texts."""
    raw_store.store_many(engine, [raw_store.Incoming(_fresh(n, round_), "smtp")
                                  for n in range(count)])
    costs, left, texts_later = [], count, []
    while left:
        started = time.perf_counter()
        done = pipeline.finish_unrouted(engine, limit=pipeline.BATCH, texts_later=texts_later)
        costs.append((time.perf_counter() - started) * 1000 / done)
        left -= done
    started = time.perf_counter()
    pipeline.fill_reply_texts(engine, texts_later)
    return costs, (time.perf_counter() - started) * 1000 / count


def test_routing_costs_under_a_millisecond_and_does_not_grow_with_the_database(bridge: Bridge) -> None:
    engine = bridge.engine()
    database = "SQLite" if engine.dialect.name == "sqlite" else "PostgreSQL"
    _threads(engine)
    _route_fresh(engine, "warm", 200)  # imports, caches and the first pages of the indexes
    _fill(engine, SMALL)
    small_costs, texts = _route_fresh(engine, "small")
    small = statistics.median(small_costs)
    started = time.perf_counter()
    _fill(engine, LARGE)
    filled_s = time.perf_counter() - started
    large = statistics.median(_route_fresh(engine, "large")[0])
    with engine.connect() as conn:
        routes = dict(conn.execute(select(InboundMessage.route, func.count()).where(
            InboundMessage.message_id.like("<large-%")).group_by(InboundMessage.route)).all())
    # numbered, thread and auto: 1042; the others Unassigned
    assert routes == {"employee": FRESH * 8 // 10, "unassigned": FRESH * 2 // 10}, routes
    growth = large / small
    print(f"\nrouting on {database}: {small:.2f} ms a message with {SMALL:,} stored, {large:.2f} ms with "
          f"{LARGE:,} stored ({growth:.2f}x); the reply texts, read after routing: {texts:.2f} ms a message; "
          f"filling took {filled_s:.0f} s")
    met_cost = table.record(f"routing cost, a message (parse, classify, route, steps after routing), {database}",
                            "", f"{small:.2f} ms median (the reply text, read after: {texts:.2f} ms)", "",
                            f"<= {GOAL_MS:g} ms", small <= GOAL_MS)
    met_growth = table.record(f"routing cost with {LARGE:,} stored, {database}",
                              f"the same with {SMALL:,} stored: {small:.2f} ms", f"{large:.2f} ms", f"{growth:.2f}x",
                              f"<= {GOAL_GROWTH}x", growth <= GOAL_GROWTH)
    assert met_cost and met_growth
