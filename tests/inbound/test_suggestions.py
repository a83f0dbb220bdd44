"""Suggested employees for Unassigned messages: the pure ranking, then the look-ups on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import event
from sqlmodel import select

from bridge.inbound.suggestion_lookups import suggest_for
from models import InboundMessage
from models.db import session_scope
from routing.suggest import Found, Suggestion, is_free_mail, rank, subject_keys, subject_lookups, telling_domain
from tests.helpers.bridge import Bridge
from tests.helpers.messages import reply

DAY = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


def test_reply_and_forward_markers_and_tags_come_off_the_front() -> None:
    assert subject_keys("Re: Backend engineer") == ["Re: Backend engineer", "Backend engineer"]
    assert subject_keys("RE: AW: [EXT]  Fwd: Backend   engineer")[-1] == "Backend engineer"
    assert subject_keys("Antw: WG: Sv: RE[2]: Re : Data analyst")[-1] == "Data analyst"
    # every step is kept: we may have sent the tag ourselves
    assert "[Job 42] Backend engineer" in subject_keys("Re: [Job 42] Backend engineer")
    # a word that merely starts like a marker stays
    assert subject_keys("Regarding: the offer") == ["Regarding: the offer"]
    assert subject_keys("") == [] and subject_keys(None) == [] and subject_keys("Re:") == ["Re:"]
    assert set(subject_lookups("re: backend engineer")) >= {"backend engineer", "Backend engineer"}


def test_free_mail_domains_say_nothing() -> None:
    assert is_free_mail("gmail.com") and is_free_mail("GMX.de") and is_free_mail("yahoo.co.uk")
    assert not is_free_mail("acme.example")
    assert telling_domain("lee@Acme.Example") == "acme.example" and telling_domain("x@web.de") is None
    assert telling_domain(None) is None and telling_domain("no-at-sign") is None


def test_stronger_kinds_outrank_any_combination_of_weaker_ones() -> None:
    rows = [
        Found("domain", 3, "Cy Park", "acme.example", DAY, 4),
        Found("assigned", 3, "Cy Park", "lee@acme.example", DAY),
        Found("address", 3, "Cy Park", "lee@acme.example", DAY),
        Found("subject", 1042, "Ana Ruiz", "Backend engineer", DAY - dt.timedelta(days=30)),
        Found("domain", 2001, "Ben Okafor", "acme.example", DAY),
    ]
    ranked = rank("Re: Backend engineer", "lee@acme.example", rows)
    assert [(s.employee_number, s.score) for s in ranked] == [(1042, 8), (3, 7), (2001, 1)]
    assert ranked[0].evidence == ['answers "Backend engineer" sent by Ana Ruiz on 2026-10-03']
    assert ranked[1].evidence == ["same address in a conversation with Cy Park",
                                  "another message from this sender was assigned to Cy Park",
                                  "same domain acme.example as 4 candidates in conversations with Cy Park"]


def test_evidence_merges_per_employee_and_only_this_messages_rows_count() -> None:
    rows = [
        Found("subject", 1042, "Ana Ruiz", "backend ENGINEER", DAY - dt.timedelta(days=3), 2),
        Found("subject", 1042, "Ana Ruiz", "Backend engineer", DAY, 3),
        Found("subject", 1042, "Ana Ruiz", "Data analyst", DAY),  # another message's subject
        Found("address", 1042, "Ana Ruiz", "someone.else@acme.example", DAY),  # another sender
        Found("domain", 2001, "Ben Okafor", "gmail.com", DAY),  # a free-mail domain never counts
        Found("assigned", 1042, "Ana Ruiz", "LEE@acme.example", None, 2),
    ]
    ranked = rank("Fwd: Re: Backend engineer", "lee@acme.example", rows)
    assert ranked == [Suggestion(1042, "Ana Ruiz", 10, [
        'answers "Backend engineer" sent by Ana Ruiz on 2026-11-02 (the latest of 5)',
        "2 other messages from this sender were assigned to Ana Ruiz"])]
    assert rank(None, None, rows) == [] and rank("Hello", "x@gmail.com", rows) == []


def test_ties_go_to_the_newest_evidence_then_the_name() -> None:
    rows = [Found("address", 7, "Zoe", "c@x.example", DAY - dt.timedelta(days=1)),
            Found("address", 8, "Bea", "c@x.example", DAY),
            Found("address", 9, "Al", "c@x.example", DAY - dt.timedelta(days=1)),
            Found("address", 10, "Dan", "c@x.example", None)]
    assert [s.employee_name for s in rank("Hello", "c@x.example", rows)] == ["Bea", "Al", "Zoe", "Dan"]
    naive = [Found("address", 7, "Zoe", "c@x.example", dt.datetime(2026, 1, 2)),  # SQLite's naive UTC
             Found("address", 8, "Bea", "c@x.example", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))]
    assert [s.employee_name for s in rank("Hello", "c@x.example", naive)] == ["Zoe", "Bea"]


# --- the look-ups, on SQLite and PostgreSQL ----------------------------------------------------------------


def _ingest(b: Bridge, n: int, sender: str, subject: str, to: str = "jobs@example.test") -> dict:
    got = json.loads(b.run("ingest", "-", "--json", stdin=reply(f"s{n}@mail.example", sender, to, subject)).stdout)
    assert got["route"] == "unassigned", got
    return got


def _suggested(b: Bridge) -> tuple[dict[int, list[Suggestion]], int]:
    """The suggestions for every open Unassigned message, and how many queries that took."""
    engine = b.engine()
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001 - SQLAlchemy event
        statements.append(statement)

    with session_scope(engine) as session:
        rows = list(session.exec(select(InboundMessage).where(InboundMessage.route == "unassigned",
                                                              InboundMessage.triage == "open")))
        event.listen(engine, "before_cursor_execute", count)
        try:
            found = suggest_for(session, rows)
        finally:
            event.remove(engine, "before_cursor_execute", count)
    return found, len(statements)


def test_suggestions_from_subjects_addresses_assignments_and_domains(bridge: Bridge) -> None:
    b = bridge
    b.run("employee", "add", "--number", "2001", "--name", "Ben Okafor", "--email", "ben@example.test")
    b.run("employee", "add", "--number", "2002", "--name", "Cy Park", "--email", "cy@example.test")
    b.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Backend engineer", "--body", "x")
    b.run("send", "--employee", "2001", "--to", "lee@acme.example", "--subject", "Data analyst", "--body", "x")
    for number in ("1042", "2002"):  # a candidate in conversations with two employees
        b.run("send", "--employee", number, "--to", "shared@uni.example", "--subject", f"Hello from {number}",
              "--body", "x")

    answers = _ingest(b, 1, "Other Person <other@example.org>", "Re: Backend engineer")
    freemail = _ingest(b, 2, "kim@gmail.com", "AW: Data analyst")
    colleague = _ingest(b, 3, "max@acme.example", "A question")
    shared = _ingest(b, 4, "shared@uni.example", "Hello again")  # known to two employees: ambiguous
    first, second = _ingest(b, 5, "new@gmx.de", "Hi"), _ingest(b, 6, "new@gmx.de", "Hi again")
    nothing = _ingest(b, 7, "nobody@gmail.com", "Hello")
    b.run("unassigned", "assign", str(first["id"]), "--employee", "2002")

    found, queries = _suggested(b)
    assert queries == 4  # one per kind of evidence, however many messages
    top = {i: [(s.employee_number, s.score) for s in found[i]] for i in found}
    assert top[answers["id"]] == [(1042, 9)]  # subject + same domain example.org as cand@example.org
    assert found[answers["id"]][0].evidence[0].startswith('answers "Backend engineer" sent by Ana Ruiz on ')
    assert found[answers["id"]][0].evidence[1] == \
        "same domain example.org as a candidate in conversations with Ana Ruiz"
    assert top[freemail["id"]] == [(2001, 8)]  # no domain evidence from gmail.com
    assert top[colleague["id"]] == [(2001, 1)]
    assert sorted(top[shared["id"]]) == [(1042, 4), (2002, 4)]
    assert top[second["id"]] == [(2002, 6)]  # the person's assignment linked the sender to Cy too
    assert found[second["id"]][0].evidence == ["same address in a conversation with Cy Park",
                                               "another message from this sender was assigned to Cy Park"]
    assert top[nothing["id"]] == []

    b.run("employee", "deactivate", "2001")  # only active employees are suggested
    found, _ = _suggested(b)
    assert found[freemail["id"]] == [] and found[colleague["id"]] == []


def test_one_subject_sent_many_times_is_one_line(bridge: Bridge) -> None:
    for n in range(12):
        bridge.run("send", "--employee", "1042", "--to", f"c{n}@example.org", "--subject", "Interview slots",
                   "--body", "x")
    got = _ingest(bridge, 1, "c99@gmail.com", "RE: Interview slots")
    found, queries = _suggested(bridge)
    assert queries == 3  # no domain to look up: gmail.com says nothing
    assert [s.evidence for s in found[got["id"]]] == [
        [f'answers "Interview slots" sent by Ana Ruiz on {dt.datetime.now(dt.UTC):%Y-%m-%d} (the latest of 12)']]
