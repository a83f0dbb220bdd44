"""Reading a raw message: headers with the standard library, bodies with mail-parser.

Nothing here may raise on hostile or broken input: what cannot be read is left empty and the
reason kept in `error`, so the message is still routed on what could be read.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import mailparser

from routing.message_ids import normalize_message_id
from routing.router import Headers

_MSG_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
MAX_BODY_CHARS = 2_000_000


@dataclass(frozen=True)
class Parsed:
    message: Message  # compat32 parse, for the classifier
    headers: Headers
    message_id: str | None
    from_addr: str | None
    from_name: str | None
    subject: str | None
    text: str | None
    html: str | None
    error: str | None


def decode(value: object) -> str:
    """A header value as text: encoded-words decoded, folding removed; never raises."""
    text = str(value)
    with contextlib.suppress(Exception):  # a broken encoded-word stays as it is
        text = str(make_header(decode_header(text)))
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def message_id_of(value: str | None) -> str | None:
    match = _MSG_ID.search(value or "")
    return normalize_message_id(match.group(0)) if match else None


def dedup_key(raw: bytes) -> tuple[str, str | None]:
    """(key, Message-ID): the normalized Message-ID, else a hash of the bytes."""
    try:
        mid = message_id_of(str(BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw).get("Message-ID")))
    except Exception:  # noqa: BLE001
        mid = None
    return (mid, mid) if mid else ("sha256:" + hashlib.sha256(raw).hexdigest(), None)


def _bodies_stdlib(msg: Message) -> tuple[str | None, str | None]:
    text = html = None
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True) or b""
        body = payload.decode(part.get_content_charset() or "utf-8", "replace")
        if kind == "text/plain" and text is None:
            text = body
        elif kind == "text/html" and html is None:
            html = body
    return text, html


def parse(raw: bytes) -> Parsed:
    errors: list[str] = []
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    items = tuple((str(k).lower(), decode(v)) for k, v in msg.items())
    headers = Headers(items)
    found = getaddresses([headers.first("from") or ""])
    from_name, from_addr = (found[0][0] or None, found[0][1].lower() or None) if found else (None, None)
    try:
        mail = mailparser.parse_from_bytes(raw)
        text = "\n".join(mail.text_plain) or None
        html = "\n".join(mail.text_html) or None
    except Exception as err:  # noqa: BLE001 - mail-parser raises on some real bounces: read it ourselves
        errors.append(f"mail-parser: {type(err).__name__}; bodies read with the standard library")
        try:
            text, html = _bodies_stdlib(msg)
        except Exception as err2:  # noqa: BLE001
            errors.append(f"bodies unreadable: {type(err2).__name__}")
            text = html = None
    if msg.defects:
        errors.append("MIME defects: " + ", ".join(sorted({type(d).__name__ for d in msg.defects})))
    return Parsed(msg, headers, message_id_of(headers.first("message-id")), from_addr if from_addr and "@" in from_addr
                  else None, from_name, headers.first("subject"), text[:MAX_BODY_CHARS] if text else None,
                  html[:MAX_BODY_CHARS] if html else None, "; ".join(errors) or None)
