"""The one inbound pipeline for the SMTP receiver, the IMAP poller and `replybridge ingest`.

1. `store`: the raw bytes and the envelope are committed, deduplicated by normalized Message-ID
   (else a content hash). Only after this may a source acknowledge the message (SMTP 250, IMAP
   progress). 2-5. `process`: parse, classify and route read-only, then claim the row and commit the
   decision in one short write transaction (a racing router finds it done).
A stored message whose decision was never committed (a crash) is finished by `finish_unrouted`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bridge import candidates, crypto, portal
from bridge.inbound import hand_off
from bridge.inbound.after_routing import acknowledgement
from bridge.inbound.directory import DatabaseDirectory
from bridge.inbound.parse import Parsed, dedup_key, parse
from bridge.net.diagnosis import Endpoint, Failure, diagnose
from bridge.ops.webhooks import outbox
from models import Employee, InboundMessage, OutboundMessage, utcnow
from models.db import session_scope
from routing.classify import BounceInfo, Classification, classify
from routing.reply_text import extract_reply
from routing.router import Decision, Envelope, is_probe, route

log = logging.getLogger(__name__)
BOUNCE_MATCH_WINDOW = dt.timedelta(days=30)


@dataclass(frozen=True)
class Incoming:
    raw: bytes
    source: str  # smtp | imap | pipe
    envelope_from: str | None = None
    envelope_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stored:
    id: int
    duplicate: bool


STORE_ATTEMPTS = 3


def store_many(engine: Engine, items: Iterable[Incoming],
               also: Callable[[Session], None] | None = None) -> list[Stored]:
    """Commit the raw messages, one transaction for the lot; duplicates return the stored id.

    `also` runs first in the same transaction: the IMAP poller advances its folder there, so its
    progress is committed with exactly what it covers.
    """
    items = list(items)
    keys = [dedup_key(item.raw) for item in items]
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            return _store(engine, items, keys, also)
        except IntegrityError:  # another source stored one of these Message-IDs just now: store the batch again
            if attempt == STORE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _store(engine: Engine, items: list[Incoming], keys: list[tuple[str, str | None]],
           also: Callable[[Session], None] | None) -> list[Stored]:
    """One SELECT for the keys already stored and one multi-row INSERT (ORM objects cost 0.5 ms each)."""
    now = utcnow()
    with session_scope(engine) as session:
        if also is not None:
            also(session)  # first: on SQLite this takes the write lock before anything is read
        wanted = list({key for key, _mid in keys})
        ids = dict(session.exec(select(InboundMessage.dedup_key, InboundMessage.id)
                                .where(InboundMessage.dedup_key.in_(wanted))).all())
        rows: dict[str, dict[str, object]] = {}
        duplicate: list[bool] = []
        for item, (key, mid) in zip(items, keys, strict=True):
            duplicate.append(key in ids or key in rows)
            if not duplicate[-1]:  # the table's column defaults fill the rest, as for an ORM object
                rows[key] = {"dedup_key": key, "message_id": mid, "raw": item.raw, "size": len(item.raw),
                             "source": item.source, "envelope_from": item.envelope_from,
                             "envelope_to": json.dumps(list(item.envelope_to)), "received_at": now}
        if rows:
            session.execute(insert(InboundMessage.__table__), list(rows.values()))
            ids.update(session.exec(select(InboundMessage.dedup_key, InboundMessage.id)
                                    .where(InboundMessage.dedup_key.in_(list(rows)))).all())
        return [Stored(ids[key], dup) for (key, _mid), dup in zip(keys, duplicate, strict=True)]


def store(engine: Engine, item: Incoming) -> Stored:
    return store_many(engine, [item])[0]


def _bounced_outbound(session: Session, info: BounceInfo, received_at: dt.datetime) -> OutboundMessage | None:
    """The original of a bounce: by its Message-ID, else the newest mail to a failed recipient."""
    if info.original_message_id:
        found = session.exec(select(OutboundMessage).where(OutboundMessage.message_id == info.original_message_id)
                             ).first()
        if found:
            return found
    if info.recipients:
        return session.exec(select(OutboundMessage).where(
            OutboundMessage.to_addr.in_(list(info.recipients)),
            OutboundMessage.created_at >= received_at - BOUNCE_MATCH_WINDOW,
            OutboundMessage.status.in_(("sent", "undeliverable")))
            .order_by(OutboundMessage.created_at.desc())).first()
    return None


def bounce_hint(info: BounceInfo) -> str:
    code = 550 if info.permanent else 450
    failure = Failure("reply", "rcpt", code, f"{info.status or ''} {info.diagnostic or info.reason}".strip())
    return diagnose(failure, Endpoint("the recipient's server", 25, "none")).hint


def _apply_bounce(session: Session, row: InboundMessage, info: BounceInfo | None) -> str:
    """Mark the original undeliverable on a permanent bounce, or when the sending server gave up
    (expired: not delivered, though the address may be fine); a delay notice changes nothing."""
    if info is None:
        return "bounce without readable details"
    original = _bounced_outbound(session, info, row.received_at)
    what = f"{info.status or 'no status'} {info.reason}".strip()
    if original is None:
        return f"bounce ({what}); the original message was not found"
    row.outbound_id = original.id
    if not info.permanent and info.reason != "expired":
        return f"delayed delivery notice ({what}) for Mail Log #{original.id}; it stays deliverable"
    was = original.status
    original.status = "undeliverable"
    original.last_reply = f"bounce: {info.status or ''} {info.diagnostic or info.reason}".strip()[:1000]
    original.hint = bounce_hint(info)
    session.add(original)
    if was != "undeliverable":  # webhooks: the ATS hears of it once, in this transaction
        outbox.emit_outbound(session, "outbound.undeliverable", original)
    return f"bounce ({what}) marked Mail Log #{original.id} undeliverable"


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
        if not probe:  # a `test loop` probe is never delivered or answered
            acknowledgement.maybe_acknowledge(session, row, outcome.parsed.headers, settings)
            hand_off.plan(session, row, settings)
            outbox.emit_inbound(session, "message.routed", row)  # webhooks: after the plan, so data shows it
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
    if decision.route == "bounce":
        row.reason = _apply_bounce(session, row, outcome.classification.bounce)
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
