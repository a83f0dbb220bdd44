"""The JSON objects the CLI (`--json`), the HTTP API and the webhooks share: one builder of each, so the
three never drift apart (docs/ARCHITECTURE.md, "Contract"). A leaf: it reads rows, it decides nothing."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Session, select

from models import Candidate, Employee, InboundMessage, OutboundMessage


def inbound_json(session: Session, m: InboundMessage, delivery_state: str | None = None) -> dict[str, object]:
    """An inbound message object as the contract has it (docs/ARCHITECTURE.md, "Contract") (the one builder of it).

    Lists preload the page's employees and candidates (session.get then answers from the identity map)
    and pass the forwards' delivery states, so a page costs a few queries, not a few per row.
    """
    employee = session.get(Employee, m.employee_id) if m.employee_id else None
    candidate = session.get(Candidate, m.candidate_id) if m.candidate_id else None
    return {
        "id": m.id, "message_id": m.message_id, "from": m.from_addr, "from_name": m.from_name,
        "subject": m.subject, "received_at": m.received_at.isoformat(), "source": m.source, "kind": m.kind,
        "route": m.route, "employee_number": employee.number if employee else None,
        "candidate": candidate.email if candidate else None, "reason": m.reason, "rule": m.rule,
        "flagged": m.flagged, "flag_reason": m.flag_reason, "triage": m.triage,
        "conversation_id": m.conversation_id, "outbound_id": m.outbound_id, "parse_error": m.parse_error,
        "delivery": delivery_state or hand_off_state(session, m), "delivery_error": m.delivery_error,
    }


def log_json(session: Session, m: OutboundMessage) -> dict[str, object]:
    """A Mail Log object as the contract has it (docs/ARCHITECTURE.md, "Contract")."""
    employee = session.get(Employee, m.employee_id) if m.employee_id else None
    return {
        "id": m.id, "message_id": m.message_id, "to": m.to_addr, "from": m.from_addr, "subject": m.subject,
        "status": m.status, "attempts": m.attempts, "last_reply": m.last_reply, "hint": m.hint,
        "sent_folder": m.sent_folder, "sent_folder_error": m.sent_folder_error,
        "employee_number": employee.number if employee else None, "automated": m.automated,
        "smtp_account": m.smtp_account, "created_at": _iso(m.created_at), "sent_at": _iso(m.sent_at),
        "purpose": m.purpose, "inbound_id": m.inbound_id,
        "next_attempt_at": _iso(m.next_attempt_at) if m.status in ("queued", "deferred") else None,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def hand_off_state(session: Session, row: InboundMessage) -> str:
    """The delivery state as shown: a forward's state is its Mail Log status (one source of truth)."""
    if row.delivery != "queued":
        return row.delivery
    status = session.exec(select(OutboundMessage.status).where(OutboundMessage.inbound_id == row.id,
                                                               OutboundMessage.purpose == "forward")).first()
    return f"forward {status}" if status else "queued"
