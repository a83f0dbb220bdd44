"""The routing order as a pure function: thread, numbered recipient, known sender, else Unassigned.

An in-memory Directory stands in for the database here; the ingest tests run the same rules on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from routing.addresses import NumberedAddresses
from routing.classify import Classification
from routing.message_ids import make_message_id, new_thread_index
from routing.router import ConversationRef, Decision, EmployeeRef, Envelope, Headers, route

KEY = b"k" * 32
NUMBERED = NumberedAddresses.from_strings("jobs+{number}@example.test", ["{number}@reply.example.test"])
REPLY = Classification("reply", "no automatic or bounce signal")


@dataclass
class Memory:
    employees: dict[int, bool] = field(default_factory=lambda: {1042: True, 2001: True, 3055: False})
    conversations: list[ConversationRef] = field(default_factory=list)
    message_ids: dict[str, int] = field(default_factory=dict)
    thread_roots: dict[str, int] = field(default_factory=dict)
    own: set[str] = field(default_factory=lambda: {"ana@example.test"})

    def add(self, conv_id: int, number: int, candidate: str) -> ConversationRef:
        ref = ConversationRef(conv_id, number, self.employees[number], candidate)
        self.conversations.append(ref)
        return ref

    def conversation_for_message_ids(self, ids: Sequence[str]) -> ConversationRef | None:
        return next((self.conversation(self.message_ids[i]) for i in ids if i in self.message_ids), None)

    def conversation(self, conversation_id: int) -> ConversationRef | None:
        return next((c for c in self.conversations if c.id == conversation_id), None)

    def conversation_for_thread_index(self, root: str) -> ConversationRef | None:
        return self.conversation(self.thread_roots[root]) if root in self.thread_roots else None

    def employee(self, number: int) -> EmployeeRef | None:
        return EmployeeRef(number, self.employees[number]) if number in self.employees else None

    def sender_conversations(self, email: str) -> list[ConversationRef]:
        return [c for c in self.conversations if c.candidate_email == email]

    def is_own_address(self, email: str) -> bool:
        return email in self.own


def headers(**values: str) -> Headers:
    return Headers(tuple((k.rstrip("_").replace("_", "-").lower(), v) for k, v in values.items()))


NO_ENVELOPE = Envelope()


def decide(h: Headers, memory: Memory, envelope: Envelope = NO_ENVELOPE, kind: Classification = REPLY) -> Decision:
    return route(h, envelope, kind, memory, NUMBERED, KEY)


def test_thread_by_message_id_wins_over_numbered_recipient() -> None:
    memory = Memory()
    memory.add(7, 1042, "sam@example.org")
    memory.message_ids["<ours@example.test>"] = 7
    d = decide(headers(from_="Sam <sam@example.org>", to="jobs+2001@example.test",
                       in_reply_to="<ours@example.test>"), memory)
    assert (d.route, d.rule, d.employee_number, d.conversation_id, d.flagged) == ("employee", "thread", 1042, 7, False)
    assert [v.rule for v in d.verdicts] == ["bounce", "loop", "thread"]


def test_signed_token_threads_when_only_that_id_survives() -> None:
    memory = Memory()
    memory.add(9, 2001, "kim@example.org")
    mid = make_message_id(KEY, "example.test", 9)
    d = decide(headers(from_="kim@example.org", references=f"<lost@elsewhere> {mid}"), memory)
    assert (d.rule, d.employee_number) == ("thread", 2001) and "signed conversation token" in d.reason
    forged = mid.replace(".c9.", ".c8.")
    assert decide(headers(from_="kim@example.org", references=forged), memory).rule != "thread"


def test_thread_index_is_the_last_thread_signal() -> None:
    memory = Memory()
    memory.add(4, 1042, "lee@example.org")
    root = new_thread_index()
    memory.thread_roots[root] = 4
    d = decide(headers(from_="lee@example.org", thread_index=root), memory)
    assert (d.rule, d.employee_number) == ("thread", 1042) and "Thread-Index" in d.reason


def test_thread_from_another_sender_is_flagged_and_not_attached() -> None:
    memory = Memory()
    memory.add(7, 1042, "sam@example.org")
    memory.message_ids["<ours@example.test>"] = 7
    d = decide(headers(from_="sam.private@example.net", in_reply_to="<ours@example.test>"), memory)
    assert (d.route, d.employee_number, d.flagged) == ("employee", 1042, True)
    assert "sam.private@example.net" in d.flag_reason


@pytest.mark.parametrize("where", ["envelope", "Delivered-To", "X-Original-To", "X-Delivered-To", "Envelope-To",
                                   "X-Forwarded-To", "Received", "To", "Cc"])
def test_numbered_recipient_in_every_place(where: str) -> None:
    addr = "JOBS+1042@Example.Test"
    envelope = Envelope("x@example.org", (addr,)) if where == "envelope" else Envelope()
    values = {"from_": "new@example.org", "to": "team@example.test"}
    if where == "Received":
        values["received"] = f"from mx.example.org by mx.example.test with ESMTP id 1 for <{addr}>; Mon, 1 Jan 2026"
    elif where == "To":
        values["to"] = f"Ana <{addr}>"
    elif where != "envelope":
        values[where.replace("-", "_").lower()] = addr
    d = decide(headers(**values), Memory(), envelope)
    assert (d.route, d.rule, d.employee_number) == ("employee", "numbered", 1042)


def test_numbered_order_envelope_before_to() -> None:
    d = decide(headers(from_="new@example.org", to="jobs+2001@example.test"), Memory(),
               Envelope("x@example.org", ("jobs+1042@example.test",)))
    assert d.employee_number == 1042


@pytest.mark.parametrize("to, words", [("jobs+3055@example.test", "inactive"),
                                       ("jobs+9999@example.test", "no employee")])
def test_unknown_or_inactive_number_goes_to_unassigned(to: str, words: str) -> None:
    d = decide(headers(from_="new@example.org", to=to), Memory())
    assert (d.route, d.rule, d.employee_number) == ("unassigned", "numbered", None)
    assert words in d.reason


def test_alternate_format_still_routes() -> None:
    d = decide(headers(from_="new@example.org", to="1042@reply.example.test"), Memory())
    assert d.employee_number == 1042


def test_known_sender_with_one_employee_and_ambiguous() -> None:
    memory = Memory()
    memory.add(1, 1042, "sam@example.org")
    d = decide(headers(from_="Sam <SAM@example.org>".lower(), to="jobs@example.test"), memory)
    assert (d.route, d.rule, d.employee_number) == ("employee", "known_sender", 1042)
    memory.add(2, 2001, "sam@example.org")
    d = decide(headers(from_="sam@example.org", to="jobs@example.test"), memory)
    assert (d.route, d.rule) == ("unassigned", "known_sender") and "ambiguous" in d.reason


def test_nothing_matches_goes_to_unassigned_with_every_verdict() -> None:
    d = decide(headers(from_="stranger@example.net", to="jobs@example.test", in_reply_to="<x@y.test>"), Memory())
    assert (d.route, d.rule) == ("unassigned", "none")
    assert [(v.rule, v.matched) for v in d.verdicts] == [("bounce", False), ("loop", False), ("thread", False),
                                                         ("numbered", False), ("known_sender", False), ("none", True)]


def test_message_ids_in_the_body_never_count() -> None:
    memory = Memory()
    memory.add(7, 1042, "sam@example.org")
    memory.message_ids["<ours@example.test>"] = 7
    d = decide(headers(from_="x@example.net", subject="see <ours@example.test>"), memory)
    assert d.rule == "none"


@pytest.mark.parametrize("sender", ["jobs+1042@example.test", "ana@example.test"])
def test_mail_from_our_own_addresses_is_never_a_reply(sender: str) -> None:
    d = decide(headers(from_=sender, to="jobs+1042@example.test"), Memory())
    assert (d.route, d.rule) == ("unassigned", "loop")


def test_signed_probe_passes_the_loop_guard_and_a_forged_one_does_not() -> None:
    from routing.message_ids import make_probe_token

    own = {"from_": "ana@example.test", "to": "jobs+1042@example.test"}
    d = decide(headers(**own, x_replybridge_probe=make_probe_token(KEY)), Memory())
    assert (d.route, d.rule, d.employee_number) == ("employee", "numbered", 1042)
    forged = decide(headers(**own, x_replybridge_probe="abc.def"), Memory())
    assert (forged.route, forged.rule) == ("unassigned", "loop")


def test_bounce_comes_first() -> None:
    bounce = Classification("bounce", "multipart/report; report-type=delivery-status", automatic=True)
    d = decide(headers(from_="MAILER-DAEMON@example.org", to="jobs+1042@example.test"), Memory(), kind=bounce)
    assert (d.route, d.rule) == ("bounce", "bounce")


def test_auto_reply_is_routed_like_a_reply() -> None:
    auto = Classification("auto_reply", "Auto-Submitted: auto-replied", automatic=True)
    d = decide(headers(from_="sam@example.org", to="jobs+1042@example.test"), Memory(), kind=auto)
    assert (d.route, d.employee_number) == ("employee", 1042)
