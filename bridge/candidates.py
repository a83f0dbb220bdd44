"""Candidates and their conversations with employees: the one get-or-create both directions use."""

from __future__ import annotations

from sqlmodel import Session, select

from bridge.memo import remember, remembered
from models import Candidate, Conversation, Employee


def find(session: Session, employee: Employee, email: str) -> Conversation | None:
    """The employee's conversation with this address, if the address already is their candidate."""
    return remembered(session, ("conversation", employee.id, email.lower()), lambda: session.exec(
        select(Conversation).join(Candidate, Candidate.id == Conversation.candidate_id)
        .where(Conversation.employee_id == employee.id, Candidate.email == email.lower())).first())


def find_many(session: Session, pairs: set[tuple[int, str]]) -> None:
    """`find` for many (employee id, address) pairs in one query, remembered for this session (bridge.memo)."""
    emails = {email.lower() for _employee, email in pairs}
    found = {(conversation.employee_id, email): conversation for conversation, email in session.exec(
        select(Conversation, Candidate.email).join(Candidate, Candidate.id == Conversation.candidate_id)
        .where(Candidate.email.in_(emails)))} if emails else {}
    for employee_id, email in pairs:
        remember(session, ("conversation", employee_id, email.lower()), found.get((employee_id, email.lower())))


def link(session: Session, employee: Employee, email: str, name: str | None = None) -> tuple[Candidate, Conversation]:
    """The candidate with this address and their conversation with the employee, created if new."""
    candidate = session.exec(select(Candidate).where(Candidate.email == email.lower())).first()
    if candidate is None:
        candidate = Candidate(email=email.lower(), name=name)
        session.add(candidate)
        session.flush()
    conversation = session.exec(select(Conversation).where(Conversation.employee_id == employee.id,
                                                           Conversation.candidate_id == candidate.id)).first()
    if conversation is None:
        conversation = Conversation(employee_id=employee.id, candidate_id=candidate.id)
        session.add(conversation)
        session.flush()
    return candidate, conversation
