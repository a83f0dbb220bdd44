"""The original message a bounce returns: its headers, its Message-ID, and the addresses in it.

The Message-ID finds our outbound message; the original's own addresses (us, the sender) and
IDs are what a bounce names besides the failed recipient, so the recipient heuristics skip them.
MTAs return the original in many shapes: message/rfc822, headers only, inline text, or glued
onto the delivery-status part by a missing boundary.
"""

from __future__ import annotations

import re
from email.message import Message
from functools import cached_property

from routing.classify.dsn import DSN_TYPES
from routing.classify.evidence import Evidence
from routing.classify.mime_view import (
    ATTACHED_MESSAGE_TYPES,
    HEADER_LINE,
    Headers,
    addresses_in,
    bare,
    clean,
    content_type,
    header,
    parse_header_block,
    raw_headers,
    text_of,
)

RETURNED_TYPES = ATTACHED_MESSAGE_TYPES | {
    "text/rfc822-headers",
    "message/rfc822-headers",
    "message/global-headers",
}
_MSGID_RE = re.compile(r"<[^<>\s]+>")
_MSGID_LINE_RE = re.compile(r"^[ \t>]*(?:X-Original-)?Message-ID:[ \t]*(<[^<>\s]+>|[^\s<>]+@[^\s<>]+)", re.I | re.M)


def normalize_msgid(value: str) -> str | None:
    """A Message-ID as "<...>" however it was written, or None when it is none."""
    value = clean(value).strip()
    if not value:
        return None
    match = _MSGID_RE.search(value)
    if match:
        return match.group(0)
    token = value.split()[0].strip("<>")
    return f"<{token}>" if "@" in token else None


class ReturnedOriginal:
    """The returned original of the bounce `evidence` describes; properties compute on first use."""

    def __init__(self, evidence: Evidence) -> None:
        self.ev = evidence

    @cached_property
    def parts(self) -> list[Message]:
        """Parts (after the first) of a type that carries a returned message or its headers."""
        return [p for p in self.ev.parts[1:] if content_type(p) in RETURNED_TYPES]

    @cached_property
    def headers(self) -> list[Headers]:
        """Header lists of the returned original, from whichever shape the MTA returned it in."""
        found: list[Headers] = []
        for part in self.ev.parts[1:]:
            ctype = content_type(part)
            payload = part.get_payload()
            if ctype in RETURNED_TYPES:
                if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                    inner = payload[0]
                    headers = raw_headers(inner)
                    body = inner.get_payload()
                    if not header(headers, "Message-ID") and isinstance(body, str) and _looks_like_headers(body):
                        headers += parse_header_block(body)  # a blank line before the original's headers
                    found.append(headers)
                else:
                    found.append(parse_header_block(text_of(part)))
            elif ctype in DSN_TYPES:
                for block in payload if isinstance(payload, list) else []:
                    headers = raw_headers(block) if isinstance(block, Message) else []
                    if header(headers, "Message-ID"):
                        found.append(headers)  # a missing boundary glued the original onto the report
            else:
                headers = raw_headers(part)
                if header(headers, "Message-ID") and (header(headers, "From") or header(headers, "Received")):
                    found.append(headers)  # the part's own header block is the original's
                elif not isinstance(payload, list) and ctype == "text/plain":
                    body = text_of(part)
                    if _looks_like_headers(body):
                        found.append(parse_header_block(body))
        return found

    def field(self, name: str) -> str | None:
        """A header of the original, from a returned part or else from the inline text."""
        for headers in self.headers:
            value = header(headers, name)
            if value:
                return value
        match = re.search(rf"(?im)^{re.escape(name)}:[ \t]*(.+)$", self.ev.tail_text)
        return match.group(1).strip() if match else None

    def message_id(self) -> str | None:
        """The original's Message-ID: to find the outbound message that bounced."""
        for headers in self.headers:
            value = header(headers, "Message-ID")
            if value:
                normalized = normalize_msgid(value)
                if normalized:
                    return normalized
        own_msgid = normalize_msgid(header(self.ev.headers, "Message-ID") or "")
        for match in _MSGID_LINE_RE.finditer(self.ev.text):
            normalized = normalize_msgid(match.group(1))
            if normalized and normalized != own_msgid:
                return normalized
        return None

    @cached_property
    def message_id_addresses(self) -> set[str]:
        """Message-IDs look like addresses; they never are the failed recipient."""
        ids = {bare(m.group(1)) for m in _MSGID_LINE_RE.finditer(self.ev.text)}
        for value in (header(self.ev.headers, "Message-ID"), self.message_id()):
            if value:
                ids.add(bare(value))
        return {i for i in ids if i}

    @cached_property
    def not_recipients(self) -> set[str]:
        """Addresses a bounce names that are not the failed recipient: us, the sender, IDs."""
        ignore = {self.ev.from_addr} | self.message_id_addresses
        for name in ("To", "Cc", "Delivered-To", "X-Original-To"):
            ignore.update(a for _, a in addresses_in(header(self.ev.headers, name)))
        for name in ("From", "Sender", "Return-Path", "Reply-To"):
            ignore.update(a for _, a in addresses_in(self.field(name)))
        return {a for a in ignore if a}


def _looks_like_headers(text: str) -> bool:
    lines = [line for line in text.replace("\r", "").split("\n")[:6] if line.strip()]
    return len(lines) >= 3 and sum(1 for line in lines if HEADER_LINE.match(line) or line[:1] in " \t") >= 3
