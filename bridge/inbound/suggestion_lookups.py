"""The look-ups behind the suggested employees of Unassigned messages, for a whole page at once.

Four queries per page however many rows it has (one per kind of evidence, see routing/suggest.py),
each grouped by employee so the answer stays small even when we sent one subject a thousand times:

- subjects: exact values IN (...) on the indexed outbound subject (ix_outbound_message_subject);
- addresses: candidate addresses IN (...) on the unique candidate email index;
- earlier assignments: sender addresses IN (...) on the indexed inbound from_addr;
- domains: the domain part of candidate addresses IN (...), grouped by domain (a scan of the
  candidates: no index answers a suffix, and the candidate table is small next to the mail).

Only active employees are suggested. Nothing is stored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import BindParameter, bindparam, func, literal_column, select
from sqlmodel import Session

from models import Candidate, Conversation, Employee, InboundMessage, OutboundMessage
from routing.suggest import Found, Suggestion, evidence_keys, rank, subject_lookups, telling_domain


class Message(Protocol):
    """What a suggestion needs of a message: an inbound row, or a row of just these columns."""

    id: int
    subject: str | None
    from_addr: str | None


def suggest_for(session: Session, rows: Sequence[Message]) -> dict[int, list[Suggestion]]:
    """Ranked suggestions per message id (every id present, an empty list when nothing points anywhere)."""
    senders = sorted({r.from_addr.lower() for r in rows if r.from_addr})
    subjects = sorted({value for r in rows for value in subject_lookups(r.subject)})
    domains = sorted({d for s in senders if (d := telling_domain(s))})
    by_key: dict[tuple[str, str], list[Found]] = defaultdict(list)
    for found in (*_subjects(session, subjects), *_addresses(session, senders), *_assigned(session, senders),
                  *_domains(session, domains, senders)):
        by_key[found.key].append(found)
    return {r.id: rank(r.subject, r.from_addr, [f for key in evidence_keys(r.subject, r.from_addr)
                                                for f in by_key.get(key, ())])
            for r in rows}


def _many(name: str) -> BindParameter:
    """One parameter for a whole list (expanded when the statement runs): no per-value work in Python."""
    return bindparam(name, expanding=True)


def _subjects(session: Session, subjects: list[str]) -> list[Found]:
    if not subjects:
        return []
    query = (select(OutboundMessage.subject, Employee.number, Employee.name,
                    func.max(OutboundMessage.created_at), func.count())
             .join(Employee, Employee.id == OutboundMessage.employee_id)
             .where(OutboundMessage.subject.in_(_many("subjects")), OutboundMessage.purpose == "message",
                    Employee.active)
             .group_by(OutboundMessage.subject, Employee.number, Employee.name))
    return [Found("subject", number, name, subject, when, count)
            for subject, number, name, when, count in session.execute(query, {"subjects": subjects})]


def _addresses(session: Session, senders: list[str]) -> list[Found]:
    if not senders:
        return []
    query = (select(Candidate.email, Employee.number, Employee.name, func.max(Conversation.created_at))
             .join(Conversation, Conversation.candidate_id == Candidate.id)
             .join(Employee, Employee.id == Conversation.employee_id)
             .where(Candidate.email.in_(_many("senders")), Employee.active)
             .group_by(Candidate.email, Employee.number, Employee.name))
    return [Found("address", number, name, email, when)
            for email, number, name, when in session.execute(query, {"senders": senders})]


def _assigned(session: Session, senders: list[str]) -> list[Found]:
    if not senders:
        return []
    query = (select(InboundMessage.from_addr, Employee.number, Employee.name,
                    func.max(InboundMessage.received_at), func.count())
             .join(Employee, Employee.id == InboundMessage.employee_id)
             # triage in an expression: the planner seeks the senders' few messages by the from_addr index
             # instead of walking every message ever assigned (what SQLite, without statistics, would do)
             .where(InboundMessage.from_addr.in_(_many("senders")),
                    func.coalesce(InboundMessage.triage, "") == "assigned", Employee.active)
             .group_by(InboundMessage.from_addr, Employee.number, Employee.name))
    return [Found("assigned", number, name, sender, when, count)
            for sender, number, name, when, count in session.execute(query, {"senders": senders})]


def _domain_of_email(dialect: str):  # noqa: ANN202 - a SQL expression
    """The part after the "@" of a candidate address, in the database's own string functions."""
    at = func.instr(Candidate.email, literal_column("'@'")) if dialect == "sqlite" else \
        func.strpos(Candidate.email, literal_column("'@'"))
    return func.substr(Candidate.email, at + literal_column("1"))


def _domains(session: Session, domains: list[str], senders: list[str]) -> list[Found]:
    """Candidates of the senders' domains, counted per domain and employee; the senders themselves are
    not counted (their own address is the stronger `address` evidence)."""
    if not domains:
        return []
    domain = _domain_of_email(session.get_bind().dialect.name).label("domain")
    query = (select(domain, Employee.number, Employee.name, func.max(Conversation.created_at),
                    func.count(func.distinct(Candidate.id)))
             .join(Conversation, Conversation.candidate_id == Candidate.id)
             .join(Employee, Employee.id == Conversation.employee_id)
             .where(domain.in_(_many("domains")), Candidate.email.not_in(_many("senders")), Employee.active)
             .group_by(domain, Employee.number, Employee.name))
    return [Found("domain", number, name, d, when, count)
            for d, number, name, when, count in session.execute(query, {"domains": domains, "senders": senders})]
