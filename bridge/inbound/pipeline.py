"""The inbound pipeline after storing: parse, classify, route, then the steps after routing.

Every source stores first (bridge.inbound.raw_store: SMTP 250, IMAP progress and the pipe's exit code
come only after that commit), then calls `process` here, or leaves it to the routing process of `serve`
(bridge.inbound.router_process) and `finish_unrouted`. `process` parses, classifies and routes in a
read-only transaction, then claims the row in one short write transaction that applies the decision and
runs the steps after routing (bridge.inbound.after_routing); a racing router finds the row done. A routing
is counted (bridge.metrics) and written as a `routed` step line once that write commits, never before: a
batch whose write fails is routed again one by one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from bridge import candidates, crypto, metrics, portal
from bridge.config import logs
from bridge.inbound import after_routing, hand_off
from bridge.inbound.after_routing.context import Routed
from bridge.inbound.directory import DatabaseDirectory
from bridge.inbound.message_content import attachment_names
from bridge.inbound.parse import Parsed, bodies, headers_only, parse
from bridge.inbound.raw_store import Incoming, store
from bridge.input_checks import storable
from bridge.memo import remember_in, remembered
from models import Employee, InboundMessage, utcnow
from models.db import session_scope
from routing.classify import Classification, classify
from routing.reply_text import extract_reply
from routing.router import Decision, Envelope, is_probe, route

log = logging.getLogger(__name__)
ROUTE_ATTEMPTS = 5
BATCH = 100  # messages routed in one pair of transactions (route_batch)
BATCH_BYTES = 8 * 1024 * 1024
ROUTE_BACKOFF = (dt.timedelta(seconds=10), dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=30))


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
    if parsed.unreadable is not None and decision.route != "bounce":  # a person looks before anyone gets it
        decision = Decision("unassigned", "unreadable", f"could not be read in full: {parsed.unreadable}; "
                            f"its headers alone say: {decision.reason}")
    first = _first_under_its_message_id(session, row)
    if first is not None:
        why = (f"reuses the Message-ID {row.message_id} of message {first} with different content: stored apart, "
               f"never taken for that message; its headers alone say: {decision.reason}")
        decision = Decision("unassigned", "reused_message_id", why, flagged=True,
                            flag_reason=f"Message-ID {row.message_id} already names message {first}")
    return Outcome(parsed, classification, decision)


def _first_under_its_message_id(session: Session, row: InboundMessage) -> int | None:
    """The message first stored under this row's Message-ID, when this row is a different one stored apart
    (bridge.inbound.raw_store: dedup key "MESSAGE-ID FINGERPRINT")."""
    if not row.message_id or row.dedup_key == row.message_id or row.dedup_key.startswith("sha256:"):
        return None
    return session.exec(select(InboundMessage.id).where(InboundMessage.dedup_key == row.message_id)).first()


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
        outcome, probe = _read(session, row, settings)
    with session_scope(engine) as session:
        claimed = session.exec(update(InboundMessage).where(InboundMessage.id == inbound_id,
                                                            InboundMessage.routed_at.is_(None))
                               .values(routed_at=utcnow()))
        row = session.get(InboundMessage, inbound_id)
        if claimed.rowcount != 1:
            return row
        _apply(session, row, outcome)
        _routed_line(session, row, outcome.decision.employee_number)
        after_routing.run(Routed(session, row, outcome.parsed, outcome.classification, outcome.decision, settings,
                                 probe))
    metrics.routed(row.route or "", row.rule or "")
    fill_reply_texts(engine, [inbound_id])
    with session_scope(engine) as session:
        return session.get(InboundMessage, inbound_id)


def _routed_line(session: Session, row: InboundMessage, employee_number: int | None) -> None:
    """The `routed` step line, written when the routing commits (before the lines of the steps after it)."""
    logs.step_on_commit(session, log, "routed", inbound_id=row.id, route=row.route, rule=row.rule,
                        employee=employee_number, kind=row.kind, flagged=row.flagged or None)


def _routed_alone(engine: Engine, inbound_id: int, reason: str) -> None:
    """Unassigned with the reason alone (`_give_up`'s last resort), counted and written like any routing."""
    with session_scope(engine) as session:
        row = session.get(InboundMessage, inbound_id)
        row.route, row.rule, row.reason, row.kind = "unassigned", "unreadable", storable(reason), "reply"
        row.triage, row.routed_at = "open", utcnow()
        session.add(row)
        _routed_line(session, row, None)
    metrics.routed(row.route, row.rule)


def _read(session: Session, row: InboundMessage, settings: portal.PortalSettings) -> tuple[Outcome, bool]:
    """The outcome and whether it is our probe. A message that cannot be read or routed goes to Unassigned
    with the reason; a database failure raises (the message is tried again)."""
    try:
        outcome = decide(session, row, settings)
        return outcome, is_probe(outcome.parsed.headers, crypto.signing_key("message-id"))
    except SQLAlchemyError:
        raise
    except Exception as exc:  # noqa: BLE001 - the message itself: never retried, never blocking the others
        log.warning("inbound message %s could not be read: %s", row.id, type(exc).__name__)
        return unreadable(row.raw, _why(exc)), False


def fill_reply_texts(engine: Engine, ids: list[int]) -> None:
    """The reply text (the new text without quotes and signature) and the attachments' file names (for search)
    of routed messages, read after routing:
    routing needs no body, and a backlog routes faster without reading them. Where it is not filled yet
    (or failed), readers take it from the raw bytes (bridge.inbound.message_content). Never raises."""
    try:
        with session_scope(engine) as session:
            due = session.exec(select(InboundMessage.id, InboundMessage.size).where(
                InboundMessage.id.in_(ids), InboundMessage.reply_text.is_(None))).all()
        for batch in batches(due):
            with session_scope(engine) as session:
                rows = session.exec(select(InboundMessage.id, InboundMessage.raw)
                                    .where(InboundMessage.id.in_(batch))).all()
            texts = [{"key": inbound_id, "text": _reply_text(raw), "names": storable(attachment_names(raw))}
                     for inbound_id, raw in rows]
            with session_scope(engine) as session:
                session.connection().execute(
                    update(InboundMessage).where(InboundMessage.id == bindparam("key"),
                                                 InboundMessage.reply_text.is_(None))
                    .values(reply_text=bindparam("text"), attachment_names=bindparam("names")), texts)
    except Exception:  # noqa: BLE001 - the page reads it from the raw bytes meanwhile
        log.warning("could not store the reply texts of %d messages", len(ids), exc_info=True)


def _reply_text(raw: bytes) -> str:
    return storable(extract_reply(*bodies(raw))) or ""


def unreadable(raw: bytes, why: str, reason: str | None = None) -> Outcome:
    """The outcome for a message that could not be read or routed: Unassigned, with the reason."""
    parsed = headers_only(raw, why)
    return Outcome(parsed, Classification("reply", "not classified: the message could not be read"),
                   Decision("unassigned", "unreadable", reason or f"could not be read: {why}"))


def _why(exc: BaseException) -> str:
    """A failure in words for the message's reason: the kind, and the database's first line (no statement)."""
    if isinstance(exc, RecursionError):
        return "its structure is nested too deep"
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


def _apply(session: Session, row: InboundMessage, outcome: Outcome) -> None:
    """Write the decision onto the stored row (inside the claiming transaction); text the database would
    refuse (NUL, bytes that are not UTF-8) is stored escaped, the raw bytes stay exact."""
    parsed, decision = outcome.parsed, outcome.decision
    row.from_addr, row.from_name = storable(parsed.from_addr), storable(parsed.from_name)
    row.subject = storable(parsed.subject)
    row.in_reply_to = storable(parsed.headers.first("in-reply-to"))
    row.references = storable(" ".join(parsed.headers.all("references")) or None)
    row.parse_error = storable(parsed.error)
    row.kind = outcome.classification.kind
    row.route, row.rule, row.reason = decision.route, decision.rule, storable(decision.reason)
    row.flagged, row.flag_reason = decision.flagged, storable(decision.flag_reason)
    row.conversation_id = decision.conversation_id
    if decision.employee_number is not None:
        employee = employee_numbered(session, decision.employee_number)
        row.employee_id = employee.id
        if parsed.from_addr and not decision.flagged:
            existing = candidates.find(session, employee, parsed.from_addr)
            if existing is not None:
                row.candidate_id, row.conversation_id = existing.candidate_id, existing.id
    row.triage = "open" if decision.route == "unassigned" else None
    row.routed_at = utcnow()
    session.add(row)


def employee_numbered(session: Session, number: int) -> Employee:
    return remembered(session, ("employee", number),
                      lambda: session.exec(select(Employee).where(Employee.number == number)).one())


def ingest(engine: Engine, item: Incoming) -> tuple[InboundMessage, bool]:
    """Store, then route; returns the message and whether it had been stored before."""
    stored = store(engine, item)
    return process(engine, stored.id), stored.duplicate


def route_stored(engine: Engine, inbound_id: int) -> InboundMessage | None:
    """`process`, never raising: a failure is counted on the message and tried again later (`finish_unrouted`),
    so one message never stops the others."""
    try:
        return process(engine, inbound_id)
    except Exception as exc:  # noqa: BLE001 - counted, backed off, and after ROUTE_ATTEMPTS routed to Unassigned
        metrics.routing_failed()
        logs.step(log, "routing_failed", inbound_id=inbound_id, error=type(exc).__name__)
        _failed(engine, inbound_id, _why(exc))
        return None


def finish_unrouted(engine: Engine, limit: int = 500, texts_later: list[int] | None = None) -> int:
    """Route messages stored but not routed (after a crash, or a failure now due again); returns how many were
    routed. Failures do not count: while the database itself fails, the routing process waits between passes
    instead of trying the same messages again at once. The reply texts are filled after each batch, or, with
    `texts_later`, their ids are added there for the caller to fill once nothing waits to be routed."""
    now = utcnow()
    with session_scope(engine) as session:
        due = session.exec(select(InboundMessage.id, InboundMessage.size).where(
            InboundMessage.routed_at.is_(None),
            or_(InboundMessage.route_next_at.is_(None), InboundMessage.route_next_at <= now))
            .order_by(InboundMessage.id).limit(limit)).all()
    routed = 0
    for batch in batches(due):
        ids = _route_group(engine, batch)
        routed += len(ids)
        if texts_later is None:
            fill_reply_texts(engine, ids)
        else:
            texts_later.extend(ids)
    return routed


def batches(due: list[tuple[int, int]]) -> Iterator[list[int]]:
    """Ids in groups of at most BATCH messages and BATCH_BYTES (a large message goes alone): a batch's raw
    bytes are in memory together."""
    batch: list[int] = []
    held = 0
    for inbound_id, size in due:
        if batch and (len(batch) == BATCH or held + size > BATCH_BYTES):
            yield batch
            batch, held = [], 0
        batch.append(inbound_id)
        held += size
    if batch:
        yield batch


def route_batch(engine: Engine, ids: list[int]) -> list[int]:
    """Route several stored messages in two transactions a group (`batches`) instead of two each (a backlog's
    cost is mostly the round trips and commits); returns the ids routed. Should a group's write fail, each
    of it is routed on its own, so one message's failure is counted on it alone and never holds up the
    others. The reply texts are left to `fill_reply_texts`."""
    if not ids:
        return []
    with session_scope(engine) as session:
        due = session.exec(select(InboundMessage.id, InboundMessage.size).where(InboundMessage.id.in_(ids))
                           .order_by(InboundMessage.id)).all()
    return [routed for batch in batches(due) for routed in _route_group(engine, batch)]


def _route_group(engine: Engine, ids: list[int]) -> list[int]:
    """One group of `batches`: together, or one by one should that fail."""
    try:
        return _route_together(engine, ids)
    except Exception:  # noqa: BLE001 - one by one: the failing message is found, counted and backed off
        log.info("routing %d messages together failed; routing each on its own", len(ids), exc_info=True)
        return [inbound_id for inbound_id in ids if route_stored(engine, inbound_id) is not None]


def _route_together(engine: Engine, ids: list[int]) -> list[int]:
    """`process` for several: the costly reading in one read-only transaction, then one short write that claims
    them (a racing router finds them done) and applies each decision with its steps after routing."""
    with session_scope(engine) as session:
        settings = portal.load(session)
        rows = session.exec(select(InboundMessage).where(InboundMessage.id.in_(ids),
                                                         InboundMessage.routed_at.is_(None))).all()
        remember_in(session)  # the directory's employees and own addresses, read once (bridge.memo)
        read = {row.id: _read(session, row, settings) for row in rows}
    if not read:
        return []
    with session_scope(engine) as session:
        remember_in(session)  # the set-up every message reads, read once (bridge.memo)
        claimed = session.exec(update(InboundMessage).where(InboundMessage.id.in_(list(read)),
                                                            InboundMessage.routed_at.is_(None))
                               .values(routed_at=utcnow()).returning(InboundMessage.id)).scalars().all()
        rows = session.exec(select(InboundMessage).where(InboundMessage.id.in_(claimed))).all()
        hand_off.forwarded_many(session, claimed)
        candidates.find_many(session, {
            (employee_numbered(session, outcome.decision.employee_number).id, outcome.parsed.from_addr)
            for outcome, _probe in read.values()
            if outcome.decision.employee_number is not None and outcome.parsed.from_addr})
        for row in sorted(rows, key=lambda r: r.id):
            outcome, probe = read[row.id]
            _apply(session, row, outcome)
            _routed_line(session, row, outcome.decision.employee_number)
            after_routing.run(Routed(session, row, outcome.parsed, outcome.classification, outcome.decision,
                                     settings, probe))
    for row in rows:  # committed
        metrics.routed(row.route or "", row.rule or "")
    return sorted(claimed)


def _failed(engine: Engine, inbound_id: int, why: str) -> None:
    """Count a failed routing and back off; after ROUTE_ATTEMPTS route the message to Unassigned with the
    reason. The count is committed on its own, so a message that fails every time still reaches its limit."""
    try:
        with session_scope(engine) as session:
            row = session.get(InboundMessage, inbound_id)
            if row is None or row.routed_at is not None:
                return
            row.route_attempts += 1
            row.route_error = storable(why)
            row.route_next_at = utcnow() + ROUTE_BACKOFF[min(row.route_attempts, len(ROUTE_BACKOFF)) - 1]
            attempts = row.route_attempts
        if attempts >= ROUTE_ATTEMPTS:
            _give_up(engine, inbound_id, f"could not be routed: failed {attempts} times ({why})")
    except Exception:  # noqa: BLE001 - the database itself fails: the message waits, unrouted, for the next pass
        log.warning("could not record the failed routing of inbound message %s", inbound_id, exc_info=True)


def _give_up(engine: Engine, inbound_id: int, reason: str) -> None:
    """Unassigned with the reason, without the steps after routing (those may be what fails); if even
    reading its headers fails, with the reason alone."""
    try:
        with session_scope(engine) as session:
            row = session.get(InboundMessage, inbound_id)
            _apply(session, row, unreadable(row.raw, reason, reason))
            session.add(row)
            _routed_line(session, row, None)
        metrics.routed(row.route or "", row.rule or "")
        return
    except SQLAlchemyError:
        log.warning("inbound message %s: storing what its headers say failed; routing it on the reason alone",
                    inbound_id)
    _routed_alone(engine, inbound_id, reason)
