"""Step 1 of every inbound message: commit the raw bytes and the envelope, before anything else.

Only after this commit may a source acknowledge the message (SMTP 250, IMAP progress, the pipe's exit
code). Deduplicated by normalized Message-ID, else a content hash, so the same reply seen by SMTP and IMAP
is stored once. A batch is one transaction and one multi-row INSERT (ORM objects cost 0.5 ms each).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bridge.inbound.parse import content_fingerprint, dedup_key
from bridge.input_checks import storable
from models import InboundMessage, utcnow
from models.db import session_scope


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
    """One SELECT for the keys already stored and one multi-row INSERT (ORM objects cost 0.5 ms each).

    A known Message-ID is a duplicate only with the same content (parse.content_fingerprint); a different
    message under it is stored apart, keyed by both, and routed to Unassigned with that reason. Contents are
    compared only when a Message-ID is met again, so a new message costs no fingerprint."""
    now = utcnow()
    with session_scope(engine) as session:
        if also is not None:
            also(session)  # first: on SQLite this takes the write lock before anything is read
        found = _lookup(session, {key for key, _mid in keys})
        rows: dict[str, dict[str, object]] = {}
        final: list[str] = []
        for item, (key, mid) in zip(items, keys, strict=True):
            if mid and (key in found or key in rows):
                fingerprint = content_fingerprint(item.raw)
                if _stored_content(session, key, found, rows) != fingerprint:  # a message of its own, kept apart
                    key = _apart(mid, fingerprint)
                    found.update(_lookup(session, {key}))
            final.append(key)
            if key not in found and key not in rows:  # the table's column defaults fill the rest
                rows[key] = {"dedup_key": key, "message_id": mid, "raw": item.raw,
                             "size": len(item.raw), "source": item.source,
                             "envelope_from": storable(item.envelope_from),
                             "envelope_to": json.dumps([storable(a) for a in item.envelope_to]), "received_at": now}
        ids = dict(found)
        if rows:
            session.execute(insert(InboundMessage.__table__), list(rows.values()))
            ids.update(session.exec(select(InboundMessage.dedup_key, InboundMessage.id)
                                    .where(InboundMessage.dedup_key.in_(list(rows)))).all())
        fresh = set(rows)
        stored = []
        for key in final:
            stored.append(Stored(ids[key], key not in fresh))
            fresh.discard(key)  # a second copy in the same batch is a duplicate of the first
        return stored


def _lookup(session: Session, keys: set[str]) -> dict[str, int]:
    """Stored rows' ids by dedup key."""
    return dict(session.exec(select(InboundMessage.dedup_key, InboundMessage.id)
                             .where(InboundMessage.dedup_key.in_(list(keys)))).all())


def _apart(mid: str, fingerprint: str) -> str:
    return f"{mid[:900]} {fingerprint}"


def _stored_content(session: Session, key: str, found: dict[str, int], rows: dict[str, dict[str, object]]) -> str:
    """The content fingerprint of what is stored (or about to be) under `key`, from its raw bytes."""
    if key in rows:
        return content_fingerprint(rows[key]["raw"])  # type: ignore[arg-type]
    return content_fingerprint(session.exec(select(InboundMessage.raw).where(InboundMessage.id == found[key])).one())


def store(engine: Engine, item: Incoming) -> Stored:
    return store_many(engine, [item])[0]
