"""Unassigned messages: assign to an employee (linking the candidate, so the next reply threads),
dismiss (kept, restorable), restore, and route stored messages again after a configuration fix.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bridge import audit
from bridge.accounts import employees
from bridge.candidates import link
from bridge.errors import InputError, NotFound
from bridge.inbound import hand_off
from bridge.inbound.pipeline import process
from bridge.ops.webhooks import outbox
from models import Candidate, Conversation, Employee, InboundMessage, utcnow
from models.db import session_scope


def get_inbound(session: Session, inbound_id: int) -> InboundMessage:
    row = session.get(InboundMessage, inbound_id)
    if row is None:
        raise NotFound(f"no inbound message {inbound_id}")
    return row


def _open(session: Session, inbound_id: int, becomes: str) -> InboundMessage:
    """The open unassigned message, claimed for this change by a conditional UPDATE: of two people
    assigning or dismissing it at once, one wins and the other is told (on SQLite and PostgreSQL)."""
    row = get_inbound(session, inbound_id)
    claimed = session.exec(update(InboundMessage).where(
        InboundMessage.id == inbound_id, InboundMessage.route == "unassigned", InboundMessage.triage == "open")
        .values(triage=becomes, triaged_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    session.refresh(row)
    if claimed != 1:
        state = row.triage if row.route == "unassigned" else f"routed to {row.route}"
        raise InputError(f"message {inbound_id} is not an open unassigned message ({state})")
    return row


def assign(session: Session, inbound_id: int, employee_number: int) -> InboundMessage:
    employee = employees.get_employee(session, employee_number)
    if not employee.active:
        raise InputError(f"employee {employee_number} is inactive")
    row = _open(session, inbound_id, "assigned")
    row.route, row.employee_id, row.triage = "employee", employee.id, "assigned"
    row.reason = f"assigned to employee {employee_number} by a person (was: {row.reason})"
    if row.from_addr:
        candidate, conversation = link(session, employee, row.from_addr, row.from_name)
        row.candidate_id, row.conversation_id = candidate.id, conversation.id
    session.add(row)
    hand_off.plan(session, row)
    outbox.emit_inbound(session, "message.assigned", row)
    audit.record(session, "assign", f"message {inbound_id}", f"to employee {employee_number}")
    return row


def confirm_sender(session: Session, inbound_id: int) -> InboundMessage:
    """A person confirms that a flagged thread reply's new address belongs to the candidate."""
    row = get_inbound(session, inbound_id)
    if not row.flagged or row.employee_id is None or not row.from_addr:
        raise InputError(f"message {inbound_id} has no sender waiting for confirmation")
    employee = session.get(Employee, row.employee_id)
    thread = session.get(Conversation, row.conversation_id) if row.conversation_id else None
    candidate, conversation = link(session, employee, row.from_addr, row.from_name)
    if thread is not None and thread.candidate_id != candidate.id:
        _same_person(session, candidate, thread.candidate_id)
    row.candidate_id, row.conversation_id = candidate.id, conversation.id
    row.flagged, row.flag_reason = False, None
    session.add(row)
    audit.record(session, "confirm_sender", f"message {inbound_id}")
    return row


def _same_person(session: Session, candidate: Candidate, thread_candidate_id: int) -> None:
    """Record the confirmed address as another of the thread's candidate's (erasure and export follow it)."""
    first = session.get(Candidate, thread_candidate_id)
    root = first.same_person_as or first.id if first else thread_candidate_id
    if candidate.same_person_as is None and root != candidate.id:
        candidate.same_person_as = root
        session.add(candidate)


def dismiss(session: Session, inbound_id: int) -> InboundMessage:
    row = _open(session, inbound_id, "dismissed")
    audit.record(session, "dismiss", f"message {inbound_id}")
    return row


def restore(session: Session, inbound_id: int) -> InboundMessage:
    row = get_inbound(session, inbound_id)
    if row.triage != "dismissed":
        raise InputError(f"message {inbound_id} is not dismissed")
    row.triage, row.triaged_at = "open", None
    session.add(row)
    audit.record(session, "restore", f"message {inbound_id}")
    return row


def reroute(engine: Engine, ids: list[int], actor: str) -> list[InboundMessage]:
    """Route stored messages again (after a settings or employee fix); a person's assignment stays."""
    with session_scope(engine) as session:
        audit.act_as(session, actor)
        for inbound_id in ids:
            row = get_inbound(session, inbound_id)
            if row.triage == "assigned":
                raise InputError(f"message {inbound_id} was assigned by a person; it is not routed again")
            row.routed_at = None
            session.add(row)
            audit.record(session, "reroute", f"message {inbound_id}")
    return [process(engine, inbound_id) for inbound_id in ids]
