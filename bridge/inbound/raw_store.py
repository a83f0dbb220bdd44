"""Step 1 of every inbound message: commit the raw bytes and the envelope, before anything else.

Only after this commit may a source acknowledge the message (SMTP 250, IMAP progress, the pipe's exit
code). Deduplicated by normalized Message-ID, else a content hash, so the same reply seen by SMTP and IMAP
is stored once. A batch is one transaction and one multi-row INSERT (ORM objects cost 0.5 ms each).
Once it commits, each message is counted (bridge.metrics) and written as a `stored` step line.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bridge import metrics
from bridge.config import logs
from bridge.inbound.parse import content_fingerprint, dedup_key
from bridge.input_checks import storable
from models import InboundMessage, utcnow
from models.db import begin_write, session_scope

log = logging.getLogger(__name__)


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
            stored = _store(engine, items, keys, also)
        except IntegrityError:  # another source stored one of these Message-IDs just now: store the batch again
            if attempt == STORE_ATTEMPTS:
                raise
        else:
            _tell(items, keys, stored)
            return stored
    raise AssertionError("unreachable")


def _tell(items: list[Incoming], keys: list[tuple[str, str | None]], stored: list[Stored]) -> None:
    """Count the committed batch and write each message's `stored` line."""
    counts = Counter((item.source, "duplicate" if result.duplicate else "stored")
                     for item, result in zip(items, stored, strict=True))  # SMTP and pipe share a group commit
    for (source, result), count in counts.items():
        metrics.received(source, result, count)
    for item, (_key, mid), result in zip(items, keys, stored, strict=True):
        logs.step(log, "stored", source=item.source, inbound_id=result.id, message_id=mid,
                  duplicate=result.duplicate)


def _store(engine: Engine, items: list[Incoming], keys: list[tuple[str, str | None]],
           also: Callable[[Session], None] | None) -> list[Stored]:
    """One INSERT that skips the keys already stored and returns the new rows' ids: the whole cost of a
    batch of new messages. Only a key met again (a copy, or another message under a known Message-ID)
    takes the slower path of `_met_again`.

    A known Message-ID is a duplicate only with the same content (parse.content_fingerprint); a different
    message under it is stored apart, keyed by both, and routed to Unassigned with that reason. Contents are
    compared only when a Message-ID is met again, so a new message costs no fingerprint."""
    now = utcnow()
    with session_scope(engine) as session:
        connection = session.connection()
        begin_write(connection)  # first: on SQLite the write lock, before anything is read
        if also is not None:
            also(session)
        first: dict[str, int] = {}  # key -> the first item of the batch under it
        for n, (key, _mid) in enumerate(keys):
            first.setdefault(key, n)
        new = _insert_new(connection, [_row(items[n], key, keys[n][1], now) for key, n in first.items()])
        again = {key for n, (key, _mid) in enumerate(keys) if key not in new or first[key] != n}
        known = _lookup(connection, again - set(new)) if again else {}
        stored = []
        for n, (item, (key, mid)) in enumerate(zip(items, keys, strict=True)):
            if key in new and first[key] == n:
                stored.append(Stored(new[key], False))
            else:
                stored.append(_met_again(connection, item, key, mid, {**known, **new}, now))
        return stored


def _row(item: Incoming, key: str, mid: str | None, now: object) -> dict[str, object]:
    """The INSERT's values; the table's column defaults fill the rest."""
    return {"dedup_key": key, "message_id": mid, "raw": item.raw, "size": len(item.raw), "source": item.source,
            "envelope_from": storable(item.envelope_from),
            "envelope_to": json.dumps([storable(a) for a in item.envelope_to]), "received_at": now}


def _insert_new(connection: Connection, rows: list[dict[str, object]]) -> dict[str, int]:
    """Insert the rows whose key is not stored yet (ON CONFLICT DO NOTHING); their ids by key. SQLAlchemy
    sends many rows per statement ("insertmanyvalues"), so a batch is one or a few round trips."""
    if not rows:
        return {}
    table = InboundMessage.__table__
    dialect_insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = (dialect_insert(table).on_conflict_do_nothing(index_elements=[table.c.dedup_key])
                 .returning(table.c.dedup_key, table.c.id))
    return dict(connection.execute(statement, rows).all())


def _met_again(connection: Connection, item: Incoming, key: str, mid: str | None, ids: dict[str, int],
               now: object) -> Stored:
    """A key stored before (or earlier in this batch): the same message, or, under a known Message-ID
    with other content, a message of its own stored apart."""
    if not mid or _stored_content(connection, ids[key]) == (fingerprint := content_fingerprint(item.raw)):
        return Stored(ids[key], True)
    apart = f"{mid[:900]} {fingerprint}"
    found = _lookup(connection, {apart})
    if apart in found:
        return Stored(found[apart], True)
    return Stored(_insert_new(connection, [_row(item, apart, mid, now)])[apart], False)


def _lookup(connection: Connection, keys: set[str]) -> dict[str, int]:
    """Stored rows' ids by dedup key."""
    table = InboundMessage.__table__
    return dict(connection.execute(select(table.c.dedup_key, table.c.id).where(table.c.dedup_key.in_(keys))).all())


def _stored_content(connection: Connection, row_id: int) -> str:
    """The content fingerprint of a stored message, from its raw bytes."""
    table = InboundMessage.__table__
    return content_fingerprint(connection.execute(select(table.c.raw).where(table.c.id == row_id)).scalar_one())


def store(engine: Engine, item: Incoming) -> Stored:
    return store_many(engine, [item])[0]
