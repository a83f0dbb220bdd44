"""Erasing one candidate on request (GDPR article 17): `candidate erase`, the API's DELETE and the admin page.

Everything of the person (bridge.privacy.selection) goes in ONE database transaction: their received mail with
its bounces, the Mail Log entries to them with their attempts (still queued ones are thereby cancelled), the
forwards that carried their messages to a recruiter, their conversations and candidate rows, the webhook
deliveries that mention them, and their address in the error reports' conditions. A receipt (who, when, how
many of each kind, the address only as a keyed hash) and an audit entry are written in that transaction, and
a `candidate.erased` webhook event tells the applicant tracking system the address (its stored payload is
blanked once delivered). With `from_imap`, the copies in IMAP folders go first (bridge.privacy.imap_copies).

On SQLite the erasing connection zeroes what it frees (`secure_delete`), the search index is merged so the
deleted words leave it, and the write-ahead log is checkpointed: nothing of the candidate stays readable
in the file. PostgreSQL overwrites the dead rows when (auto)vacuum reclaims them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, or_, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from bridge import audit
from bridge.ops.webhooks import outbox
from bridge.privacy import imap_copies
from bridge.privacy.selection import Selection, chunks, normalized, select_person
from models import (
    AlertState,
    Candidate,
    Conversation,
    DeliveryAttempt,
    ErasureReceipt,
    InboundMessage,
    OutboundMessage,
    WebhookDelivery,
    utcnow,
)
from models.db import begin_write

log = logging.getLogger(__name__)

KINDS = ("inbound", "bounces", "mail_log", "forwards", "cancelled", "delivery_attempts", "conversations",
         "candidates", "webhook_deliveries", "alerts_redacted")
ERASED = "[erased address]"  # what stands for the address in an error report's condition
WEBHOOK_SCAN = 1000  # webhook deliveries read at a time
SEARCH_INDEX = "inbound_search"  # SQLite FTS5 index of inbound mail, where it exists


@dataclass
class Erasure:
    """What an erasure (or its dry run) found and removed; never the address or any content."""

    counts: dict[str, int]
    imap: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    receipt_id: int | None = None
    erased_before: int = 0  # earlier receipts for the same address
    at: dt.datetime = field(default_factory=utcnow)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + sum(self.imap.values())

    def as_json(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "receipt_id": self.receipt_id, "at": self.at.isoformat(),
                "counts": self.counts, "imap": self.imap, "total": self.total, "erased_before": self.erased_before}


def erase(session: Session, address: str, *, dry_run: bool = False, from_imap: bool = False,
          progress: Callable[[str], None] | None = None) -> Erasure:
    """Erase the person with this address (and their other confirmed addresses); commits the session.

    A dry run counts (with `from_imap`, the IMAP copies too) and changes nothing."""
    address = normalized(address)
    ref = audit.candidate_ref(address)
    before = session.exec(select(func.count()).select_from(ErasureReceipt)
                          .where(ErasureReceipt.address_hash == ref)).one()
    found = select_person(session, address)
    if dry_run:
        imap = imap_copies.remove(session, found, count_only=True, progress=progress) if from_imap else {}
        return Erasure(_counts(session, found, scan=True), imap, dry_run=True, erased_before=before)
    imap = imap_copies.remove(session, found, progress=progress) if from_imap else {}
    session.commit()  # the reads end: the erasure's write transaction starts afresh and holds the lock
    connection = session.connection()
    begin_write(connection)
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA secure_delete=ON")  # freed pages and cells are zeroed
    try:
        found = select_person(session, address, again=found)  # what arrived meanwhile goes too
        counts = _counts(session, found, scan=False)
        if progress:
            progress(f"erasing {sum(counts.values())} records")
        counts["webhook_deliveries"] = _delete_webhook_deliveries(session, found)
        counts["alerts_redacted"] = _redact_alerts(session, found.addresses)
        _delete_rows(session, found)
        if sqlite:
            _merge_search_index(connection)
        result = _receipt(session, address, ref, counts, imap, before)
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA secure_delete=OFF")
    session.commit()
    if sqlite:
        _checkpoint(session.get_bind())
    log.info("candidate erased: receipt %s, %s records", result.receipt_id, result.total)
    return result


def _counts(session: Session, found: Selection, *, scan: bool) -> dict[str, int]:
    """Rows per kind; `scan`: also read the webhook outbox and the error reports (else left at 0 here)."""
    unsent = set(found.unsent_ids)
    attempts = sum(session.exec(select(func.count()).select_from(DeliveryAttempt)
                                .where(DeliveryAttempt.outbound_id.in_(part))).one()
                   for part in chunks(found.all_outbound))
    counts = {
        "inbound": len(found.inbound_ids), "bounces": len(found.bounce_ids),
        "mail_log": len(set(found.outbound_ids) - unsent), "forwards": len(set(found.forward_ids) - unsent),
        "cancelled": len(unsent), "delivery_attempts": attempts,
        "conversations": len(found.conversation_ids), "candidates": len(found.candidate_ids),
        "webhook_deliveries": len(_webhook_deliveries(session, found)) if scan else 0,
        "alerts_redacted": len(_alerts(session, found.addresses)) if scan else 0,
    }
    return {kind: counts[kind] for kind in KINDS}


def _webhook_deliveries(session: Session, found: Selection) -> list[int]:
    """Deliveries whose payload names one of the addresses or an erased message (read a batch at a time)."""
    inbound, outbound = set(found.all_inbound), set(found.all_outbound)
    hits: list[int] = []
    after = 0
    while True:
        rows = session.exec(select(WebhookDelivery.id, WebhookDelivery.payload).where(WebhookDelivery.id > after)
                            .order_by(WebhookDelivery.id).limit(WEBHOOK_SCAN)).all()
        if not rows:
            return hits
        for delivery_id, payload in rows:
            if _mentions(payload, found.addresses, inbound, outbound):
                hits.append(delivery_id)
        after = rows[-1][0]


def _mentions(payload: str, addresses: list[str], inbound: set[int], outbound: set[int]) -> bool:
    lowered = payload.lower()
    if any(a in lowered for a in addresses):
        return True
    try:
        body = json.loads(payload)
    except ValueError:
        return False
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return False
    kind = str(body.get("type", ""))
    own = inbound if kind.startswith("message.") else outbound if kind.startswith("outbound.") else set()
    return data.get("id") in own or data.get("inbound_id") in inbound or data.get("outbound_id") in outbound


def _delete_webhook_deliveries(session: Session, found: Selection) -> int:
    ids = _webhook_deliveries(session, found)
    for part in chunks(ids):
        session.exec(delete(WebhookDelivery).where(WebhookDelivery.id.in_(part)))
    return len(ids)


def _alerts(session: Session, addresses: list[str]) -> list[AlertState]:
    """Error report conditions whose text names an address (a server's refusal quotes the recipient)."""
    named = [func.lower(column).contains(a, autoescape=True)
             for a in addresses for column in (AlertState.title, AlertState.detail)]
    return list(session.exec(select(AlertState).where(or_(*named))).all())


def _redact_alerts(session: Session, addresses: list[str]) -> int:
    pattern = re.compile("|".join(re.escape(a) for a in addresses), re.IGNORECASE)
    rows = _alerts(session, addresses)
    for row in rows:
        row.title, row.detail = pattern.sub(ERASED, row.title), pattern.sub(ERASED, row.detail)
        session.add(row)
    session.flush()
    return len(rows)


def _delete_rows(session: Session, found: Selection) -> None:
    """Children before parents, so no foreign key ever points at a removed row."""
    session.flush()
    for part in chunks(found.all_outbound):
        session.exec(delete(DeliveryAttempt).where(DeliveryAttempt.outbound_id.in_(part)))
    for part in chunks(found.all_inbound):
        session.exec(delete(InboundMessage).where(InboundMessage.id.in_(part)))
    for part in chunks(found.all_outbound):
        session.exec(delete(OutboundMessage).where(OutboundMessage.id.in_(part)))
    for part in chunks(found.conversation_ids):
        session.exec(delete(Conversation).where(Conversation.id.in_(part)))
    if found.candidate_ids:
        session.exec(delete(Candidate).where(Candidate.id.in_(found.candidate_ids)))


def _merge_search_index(connection: Connection) -> None:
    """The FTS5 index keeps deleted words in its segments until they are merged: merge them all now."""
    exists = connection.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
                                {"name": SEARCH_INDEX}).first()
    if exists:
        connection.exec_driver_sql(f"INSERT INTO {SEARCH_INDEX}({SEARCH_INDEX}) VALUES ('optimize')")


def _receipt(session: Session, address: str, ref: str, counts: dict[str, int], imap: dict[str, int],
             before: int) -> Erasure:
    receipt = ErasureReceipt(actor=session.info.get(audit.ACTOR, "system"), address_hash=ref,
                             counts=json.dumps(counts), imap=json.dumps(imap))
    session.add(receipt)
    session.flush()
    result = Erasure(counts, imap, receipt_id=receipt.id, erased_before=before, at=receipt.at)
    audit.record(session, "erase", f"candidate {ref[:16]}", json.dumps({"receipt": receipt.id, **counts,
                                                                        "imap": sum(imap.values())}))
    outbox.emit(session, outbox.CANDIDATE_ERASED, {"address": address, "receipt_id": receipt.id,
                                                   "counts": counts, "imap": imap, "at": receipt.at.isoformat()})
    return result


def _checkpoint(engine: Engine) -> None:
    """Best effort: copy the write-ahead log back and empty it, so the old pages leave the -wal file too
    (a reader still open elsewhere makes SQLite leave part of it: the next checkpoint finishes the work)."""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
    except Exception as exc:  # noqa: BLE001 - the erasure is committed; this only tidies the file
        log.warning("checkpoint after an erasure failed: %s", type(exc).__name__)
