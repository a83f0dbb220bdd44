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

from bridge.inbound.parse import dedup_key
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
MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # what every source takes at most (the SMTP receiver announces it as SIZE)


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
                             "source": item.source, "envelope_from": storable(item.envelope_from),
                             "envelope_to": json.dumps([storable(a) for a in item.envelope_to]), "received_at": now}
        if rows:
            session.execute(insert(InboundMessage.__table__), list(rows.values()))
            ids.update(session.exec(select(InboundMessage.dedup_key, InboundMessage.id)
                                    .where(InboundMessage.dedup_key.in_(list(rows)))).all())
        return [Stored(ids[key], dup) for (key, _mid), dup in zip(keys, duplicate, strict=True)]


def store(engine: Engine, item: Incoming) -> Stored:
    return store_many(engine, [item])[0]
