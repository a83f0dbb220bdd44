"""Where an inbound message goes: the routing order (docs/ARCHITECTURE.md), as a pure function.

Routing never makes a sender a candidate: anyone can write to a numbered address. Candidates come
from mail we sent and from a person's assignment; a routed message joins a conversation only when
its sender already is that employee's candidate.

Input: the message's headers (never its body: a Message-ID quoted in a body proves nothing), the
SMTP envelope, its classification, and a `Directory` answering look-ups. Output: a `Decision`
naming the rule that matched and why, with every rule's verdict for `ingest --explain`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from routing.addresses import NumberedAddresses, addresses_of
from routing.classify import Classification
from routing.message_ids import conversation_of, normalize_message_id, probe_token_valid, thread_index_root

PROBE_HEADER = "x-replybridge-probe"
RECIPIENT_HEADERS = ("delivered-to", "x-original-to", "x-delivered-to", "envelope-to", "x-forwarded-to")
_MSG_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;]+@[^\s<>;]+?)>?\s*;", re.IGNORECASE)


@dataclass(frozen=True)
class Headers:
    """The message's headers in order, names lower-cased, values decoded to text."""

    items: tuple[tuple[str, str], ...]

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.items if key == name]

    def first(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Envelope:
    mail_from: str | None = None  # "" is the null sender; None: unknown (pipe, IMAP)
    rcpt_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConversationRef:
    id: int
    employee_number: int
    employee_active: bool
    candidate_email: str


@dataclass(frozen=True)
class EmployeeRef:
    number: int
    active: bool


class Directory(Protocol):
    """The look-ups the router needs; the ingest pipeline answers them from the database."""

    def conversation_for_message_ids(self, message_ids: Sequence[str]) -> ConversationRef | None: ...
    def conversation(self, conversation_id: int) -> ConversationRef | None: ...
    def conversation_for_thread_index(self, root: str) -> ConversationRef | None: ...
    def employee(self, number: int) -> EmployeeRef | None: ...
    def sender_conversations(self, email: str) -> list[ConversationRef]: ...
    def is_own_address(self, email: str) -> bool: ...


@dataclass(frozen=True)
class Verdict:
    rule: str
    matched: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    route: str  # employee | unassigned | bounce
    rule: str  # bounce | loop | thread | numbered | known_sender | none
    reason: str
    employee_number: int | None = None
    conversation_id: int | None = None
    flagged: bool = False
    flag_reason: str | None = None
    verdicts: tuple[Verdict, ...] = field(default=(), compare=False)


def message_ids(value: str | None) -> list[str]:
    """The msg-ids of an In-Reply-To or References value, normalized, in order."""
    return [normalize_message_id(m) for m in _MSG_ID.findall(value or "")]


def sender_of(headers: Headers) -> str | None:
    found = addresses_of(headers.first("from") or "")
    addr = found[0][1].strip().lower() if found else ""
    return addr if "@" in addr else None


def numbered_candidates(headers: Headers, envelope: Envelope) -> list[tuple[str, str]]:
    """(where, address) for every recipient address, in the order docs/ARCHITECTURE.md gives."""
    found = [("envelope", rcpt) for rcpt in envelope.rcpt_to]
    for name in RECIPIENT_HEADERS:
        found += [(name.title(), addr) for value in headers.all(name) for _n, addr in addresses_of(value) if addr]
    for value in headers.all("received"):
        found += [("Received for", m.group(1)) for m in _RECEIVED_FOR.finditer(value)]
    for name in ("to", "cc"):
        found += [(name.title(), addr) for value in headers.all(name) for _n, addr in addresses_of(value) if addr]
    return found


def is_probe(headers: Headers, token_key: bytes) -> bool:
    token = headers.first(PROBE_HEADER)
    return token is not None and probe_token_valid(token_key, token)


class _Trail:
    """Collects each rule's verdict while the rules run in order."""

    def __init__(self) -> None:
        self.verdicts: list[Verdict] = []

    def no(self, rule: str, detail: str) -> None:
        self.verdicts.append(Verdict(rule, False, detail))

    def decide(self, decision: Decision, detail: str | None = None) -> Decision:
        self.verdicts.append(Verdict(decision.rule, True, detail or decision.reason))
        return Decision(**{**decision.__dict__, "verdicts": tuple(self.verdicts)})


def _thread(headers: Headers, directory: Directory, token_key: bytes) -> tuple[ConversationRef | None, str]:
    ids = message_ids(headers.first("in-reply-to")) + message_ids(" ".join(headers.all("references")))
    if ids:
        conv = directory.conversation_for_message_ids(ids)
        if conv:
            return conv, "In-Reply-To/References holds a Message-ID of the conversation"
        for mid in ids:
            conversation_id = conversation_of(token_key, mid)
            conv = directory.conversation(conversation_id) if conversation_id is not None else None
            if conv:
                return conv, f"the signed conversation token in {mid}"
    index = headers.first("thread-index")
    root = thread_index_root(index) if index else None
    conv = directory.conversation_for_thread_index(root) if root else None
    if conv:
        return conv, "Outlook Thread-Index of the conversation"
    if ids:
        return None, f"{len(ids)} referenced Message-ID(s), none ours"
    return None, "no In-Reply-To, References or Thread-Index"


def route(headers: Headers, envelope: Envelope, classification: Classification, directory: Directory,
          numbered: NumberedAddresses, token_key: bytes) -> Decision:
    """Apply the routing order; first match wins."""
    trail = _Trail()
    sender = sender_of(headers)
    if classification.kind == "bounce":
        return trail.decide(Decision("bounce", "bounce", f"bounce: {classification.reason}"))
    trail.no("bounce", f"not a bounce ({classification.reason})")

    if is_probe(headers, token_key):
        trail.no("loop", "a `test loop` probe of ours (signed): routed by the rules below")
    elif sender and (numbered.parse(sender) is not None or directory.is_own_address(sender)):
        return trail.decide(Decision("unassigned", "loop", f"sent from our own address {sender}: never routed as a "
                                                           "reply (mail loop guard)"))
    else:
        trail.no("loop", "not from our own addresses")

    conv, detail = _thread(headers, directory, token_key)
    if conv is not None:
        if not conv.employee_active:
            return trail.decide(Decision("unassigned", "thread", f"thread of employee {conv.employee_number}, who is "
                                                                 "inactive", conversation_id=conv.id))
        same = sender is not None and sender == conv.candidate_email.lower()
        return trail.decide(Decision(
            "employee", "thread", detail, employee_number=conv.employee_number, conversation_id=conv.id,
            flagged=not same,
            flag_reason=None if same else f"sender {sender or '(none)'} is not the conversation's candidate "
                                          f"{conv.candidate_email}: confirm before attaching"))
    trail.no("thread", detail)

    for where, address in numbered_candidates(headers, envelope):
        number = numbered.parse(address)
        if number is None:
            continue
        employee = directory.employee(number)
        if employee is None:
            return trail.decide(Decision("unassigned", "numbered", f"{where} {address}: no employee number {number}"))
        if not employee.active:
            return trail.decide(Decision("unassigned", "numbered", f"{where} {address}: employee {number} is inactive"))
        return trail.decide(Decision("employee", "numbered", f"{where} {address} is employee {number}'s numbered "
                                                             "address", employee_number=number))
    trail.no("numbered", "no numbered address among the recipients")

    if sender:
        conversations = directory.sender_conversations(sender)
        numbers = sorted({c.employee_number for c in conversations})
        if len(numbers) == 1:
            conv = conversations[0]
            if conv.employee_active:
                return trail.decide(Decision("employee", "known_sender", f"{sender} corresponds only with employee "
                                                                         f"{numbers[0]}", employee_number=numbers[0],
                                             conversation_id=conv.id))
            return trail.decide(Decision("unassigned", "known_sender", f"{sender} corresponds only with employee "
                                                                       f"{numbers[0]}, who is inactive"))
        if len(numbers) > 1:
            return trail.decide(Decision("unassigned", "known_sender", f"{sender} corresponds with several employees "
                                                                       f"({', '.join(map(str, numbers))}): ambiguous"))
        trail.no("known_sender", f"{sender} is not a known candidate")
    else:
        trail.no("known_sender", "no readable sender address")
    return trail.decide(Decision("unassigned", "none", "no rule matched: no thread, no numbered recipient, "
                                                       "unknown sender"))
