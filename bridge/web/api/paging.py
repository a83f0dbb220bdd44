"""Opaque keyset cursors: the position after the last item of a page, not an offset.

A page never repeats or skips a row when new mail arrives meanwhile, and the database seeks to the
position through the index instead of counting rows. The cursor is URL-safe base64 of a small JSON
document; clients must treat it as opaque. The Unassigned page's links use the message cursor too.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json

from bridge.web.api.errors import BadField

LOC = ("query", "cursor")
BAD = "the cursor is not one this API gave out; start again without it"


def _encode(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, object]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadField(LOC, BAD) from None
    if not isinstance(value, dict):
        raise BadField(LOC, BAD)
    return value


def _id(value: dict[str, object]) -> int:
    row_id = value.get("id")
    if not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 < row_id < 2**63:
        raise BadField(LOC, BAD)
    return row_id


def after_message(received_at: dt.datetime, row_id: int) -> str:
    """Cursor of the inbound list (newest first on received_at, then id)."""
    return _encode({"at": received_at.isoformat(), "id": row_id})


def message_position(cursor: str) -> tuple[dt.datetime, int]:
    value = _decode(cursor)
    at = value.get("at")
    try:
        when = dt.datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        when = None
    if when is None:
        raise BadField(LOC, BAD)
    return (when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)), _id(value)


def after_search(offset: int) -> str:
    """Cursor of a search (GET /messages?q=): ranked results have no keyset, so it is the count shown so far."""
    return _encode({"search": offset})


def search_position(cursor: str) -> int:
    offset = _decode(cursor).get("search")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 < offset < 2**31:
        raise BadField(LOC, BAD)
    return offset


def after_mail(row_id: int) -> str:
    """Cursor of the Mail Log list (newest first on id)."""
    return _encode({"log": row_id})


def mail_position(cursor: str) -> int:
    value = _decode(cursor)
    return _id({"id": value.get("log")})
