"""The inbound pipeline after storing: parse, classify, route, then the steps after routing.

Every source stores first (bridge.inbound.raw_store: SMTP 250, IMAP progress and the pipe's exit code
come only after that commit), then calls `process` here, or leaves it to the routing process of `serve`
(bridge.inbound.router_process) and `finish_unrouted`. `process` parses, classifies and routes in a
read-only transaction, then claims the row in one short write transaction that applies the decision and
runs the steps after routing (bridge.inbound.after_routing); a racing router finds the row done.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge import candidates, crypto, portal
from bridge.inbound import after_routing
from bridge.inbound.after_routing.context import Routed
from bridge.inbound.directory import DatabaseDirectory
from bridge.inbound.parse import Parsed, parse
from bridge.inbound.raw_store import Incoming, store
from models import Employee, InboundMessage, utcnow
from models.db import session_scope
from routing.classify import Classification, classify
from routing.reply_text import extract_reply
from routing.router import Decision, Envelope, is_probe, route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    parsed: Parsed
    classification: Classification
    decision: Decision


def decide(session: Session, row: InboundMessage, settings: portal.PortalSettings | None = None) -> Outcome:
    """Steps 2-4: parse, classify, route. No writes: `ingest --dry-run --explain` uses it too."""
    parsed = parse(row.raw)
    classification = classify(parsed.message, row.envelope_from)
    envelope = Envelope(row.envelope_from, tuple(json.loads(row.envelope_to or "[]")))
    settings = settings or portal.load(session)
    decision = route(parsed.headers, envelope, classification, DatabaseDirectory(session), settings.numbered(),
                     crypto.signing_key("message-id"))
    return Outcome(parsed, classification, decision)


def process(engine: Engine, inbound_id: int) -> InboundMessage:
    """Steps 2-5 for one stored message.

    The costly part (parse, classify, route, reply text) runs in a read-only transaction; then a
    short write transaction claims the row (a racing router finds it done) and applies the
    decision. SQLite has one writer: holding its lock while parsing would stall the receiver.
    """
    with session_scope(engine) as session:
        row = session.get(InboundMessage, inbound_id)
        if row.routed_at is not None:
            return row
        settings = portal.load(session)
        outcome = decide(session, row, settings)
        reply_text = extract_reply(outcome.parsed.text, outcome.parsed.html)
        probe = is_probe(outcome.parsed.headers, crypto.signing_key("message-id"))
    with session_scope(engine) as session:
        claimed = session.exec(update(InboundMessage).where(InboundMessage.id == inbound_id,
                                                            InboundMessage.routed_at.is_(None))
                               .values(routed_at=utcnow()))
        row = session.get(InboundMessage, inbound_id)
        if claimed.rowcount != 1:
            return row
        row.reply_text = reply_text
        _apply(session, row, outcome)
        after_routing.run(Routed(session, row, outcome.parsed, outcome.classification, outcome.decision, settings,
                                 probe))
        return row


def _apply(session: Session, row: InboundMessage, outcome: Outcome) -> None:
    """Write the decision onto the stored row (inside the claiming transaction)."""
    parsed, decision = outcome.parsed, outcome.decision
    row.from_addr, row.from_name, row.subject = parsed.from_addr, parsed.from_name, parsed.subject
    row.in_reply_to = parsed.headers.first("in-reply-to")
    row.references = " ".join(parsed.headers.all("references")) or None
    row.parse_error = parsed.error
    row.kind = outcome.classification.kind
    row.route, row.rule, row.reason = decision.route, decision.rule, decision.reason
    row.flagged, row.flag_reason = decision.flagged, decision.flag_reason
    row.conversation_id = decision.conversation_id
    if decision.employee_number is not None:
        employee = session.exec(select(Employee).where(Employee.number == decision.employee_number)).one()
        row.employee_id = employee.id
        if parsed.from_addr and not decision.flagged:
            existing = candidates.find(session, employee, parsed.from_addr)
            if existing is not None:
                row.candidate_id, row.conversation_id = existing.candidate_id, existing.id
    row.triage = "open" if decision.route == "unassigned" else None
    row.routed_at = utcnow()
    session.add(row)


def ingest(engine: Engine, item: Incoming) -> tuple[InboundMessage, bool]:
    """Store, then route; returns the message and whether it had been stored before."""
    stored = store(engine, item)
    return process(engine, stored.id), stored.duplicate


def finish_unrouted(engine: Engine, limit: int = 500) -> int:
    """Route messages stored but never routed (a crash between the steps)."""
    with session_scope(engine) as session:
        ids = session.exec(select(InboundMessage.id).where(InboundMessage.routed_at.is_(None))
                           .order_by(InboundMessage.id).limit(limit)).all()
    for inbound_id in ids:
        try:
            process(engine, inbound_id)
        except Exception:  # noqa: BLE001 - one bad message must not stop the others; it stays stored
            log.exception("routing stored message %s failed; it stays stored and is retried", inbound_id)
    return len(ids)
