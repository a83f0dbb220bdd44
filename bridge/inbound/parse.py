"""Reading a raw message: headers with the standard library, bodies with mail-parser.

Nothing here may raise on hostile or broken input: what cannot be read is left empty and the
reason kept in `error`, so the message is still routed on what could be read. A message whose MIME
structure is beyond MAX_MULTIPARTS sections or MAX_PARTS parts (counted on the raw bytes, before any
parse) is read from its headers alone: a thousand nested multiparts make the standard library's parser
recurse past Python's limit, and 200,000 empty parts cost seconds on every read.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import re
from dataclasses import dataclass, replace
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser

import mailparser

from bridge.inbound.limits import MAX_HEADER_BYTES
from routing.addresses import addresses_of
from routing.message_ids import normalize_message_id
from routing.router import Headers

_MSG_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
MAX_BODY_CHARS = 2_000_000
MAX_MULTIPARTS = 50  # multipart sections: bounds the nesting depth too
MAX_PARTS = 1000
# The most of a message parsed for routing. Routing reads the headers, the first text (its reply is at the
# top; bodies are kept to MAX_BODY_CHARS) and a bounce's report parts, which come first; the rest, an
# attachment mostly, is kept raw for its page. The parser costs about a second for 25 MiB.
ROUTING_READ_BYTES = 4 * 1024 * 1024
# The most of a header section read. Real ones are a few KiB (long Received and ARC chains stay under 100
# KiB); 25 MiB of headers, or one To of 400,000 addresses, would cost seconds and hundreds of MB to read.
# That is bridge.inbound.limits.MAX_HEADER_BYTES.
_BOUNDARY = re.compile(rb"boundary\s*=", re.IGNORECASE)
_EMPTY_LINE = re.compile(rb"\r\n\r\n|\n\n")


@dataclass(frozen=True)
class Parsed:
    message: Message  # compat32 parse, for the classifier
    headers: Headers
    message_id: str | None
    from_addr: str | None
    from_name: str | None
    subject: str | None
    error: str | None
    unreadable: str | None = None  # why only the headers were read (then `error` says so too)


def decode(value: object) -> str:
    """A header value as text: encoded-words decoded, folding removed; never raises."""
    text = str(value)
    with contextlib.suppress(Exception):  # a broken encoded-word stays as it is
        text = str(make_header(decode_header(text)))
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


# Headers holding addresses: their addr-specs are read from the raw value, before any display name is decoded,
# so an encoded-word cannot smuggle an address in (`=?utf-8?b?...?=` decoding to "dave@cand.example.org,").
ADDRESS_HEADERS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc", "delivered-to", "x-original-to",
                             "x-delivered-to", "envelope-to", "x-forwarded-to", "return-path", "resent-from",
                             "resent-to", "resent-sender"})


def address_header(value: object) -> str:
    """An address header as text: each mailbox of the raw value (what mail clients show and DMARC checks)
    with its display name decoded and quoted, so decoding cannot add, hide or change an address."""
    mailboxes = []
    for name, addr in addresses_of(str(value)):
        name = decode(name) if name else ""
        if name:
            mailboxes.append(f'"{_quoted(name)}" <{addr}>' if addr else f'"{_quoted(name)}"')
        elif addr:
            mailboxes.append(addr)
    return ", ".join(mailboxes)


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def header_text(name: str, value: object) -> str:
    """A header value as text: address headers by `address_header`, others with encoded-words decoded."""
    return address_header(value) if name in ADDRESS_HEADERS else decode(value)


def message_id_of(value: str | None) -> str | None:
    match = _MSG_ID.search(value or "")
    return normalize_message_id(match.group(0)) if match else None


def header_block(raw: bytes) -> bytes:
    """The header section of a raw message, up to its first empty line (all of it when there is none). A
    header parser given the whole message still reads every body line: 25 MiB cost a second."""
    end = _EMPTY_LINE.search(raw)  # one scan that stops at the first, not one whole scan per line ending
    return raw[:end.end()] if end else raw


def read_headers(raw: bytes) -> Message:
    """The message's headers alone, read from its header block (compat32: the values as written), at most
    MAX_HEADER_BYTES of it, cut at a line end."""
    block = header_block(raw)
    if len(block) > MAX_HEADER_BYTES:
        block = block[:block.rfind(b"\n", 0, MAX_HEADER_BYTES) + 1 or MAX_HEADER_BYTES] + b"\r\n"
    return BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)


def dedup_key(raw: bytes) -> tuple[str, str | None]:
    """(key, Message-ID): the normalized Message-ID, else a hash of the bytes."""
    try:
        value = _plain_message_id(raw)
        mid = message_id_of(str(read_headers(raw).get("Message-ID")) if value is _UNSURE else value)
    except Exception:  # noqa: BLE001
        mid = None
    return (mid, mid) if mid else ("sha256:" + hashlib.sha256(raw).hexdigest(), None)


# A header block of ASCII "Name: value" lines and their continuations, up to the empty line: read the same by
# the header parser and by a pattern. Anything else (8-bit, a stray CR, a line without a colon, an mbox From_
# line, no empty line, a block past MAX_HEADER_BYTES) goes to the parser, where its own rules apply.
_PLAIN_BLOCK = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+:[\t\x20-\x7e]*\r?\n(?:[ \t][\t\x20-\x7e]*\r?\n)*)+\r?\n")
_MESSAGE_ID_FIELD = re.compile(rb"^message-id:[ \t]*(.*(?:\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_UNSURE = object()


def _plain_message_id(raw: bytes) -> str | None | object:
    """The first Message-ID field's value as the compat32 header parser gives it (folds kept, line ends
    trimmed), read with two patterns instead of the parser; _UNSURE where the block is not plain."""
    block = header_block(raw)
    if len(block) > MAX_HEADER_BYTES or not _PLAIN_BLOCK.fullmatch(block):
        return _UNSURE
    field = _MESSAGE_ID_FIELD.search(block)
    return field.group(1).rstrip(b"\r\n").decode("ascii") if field else None


def content_fingerprint(raw: bytes) -> str:
    """What makes two copies of a message the same one: its body, its sender's address, Date and Subject. The
    trace headers each path adds (Received, Delivered-To, Return-Path ...), display names and line endings
    are left out, so the copy that came by SMTP and the one polled by IMAP agree."""
    head = header_block(raw)
    body = raw[len(head):]
    digest = hashlib.sha256()
    try:
        msg = read_headers(head)
        senders = [addr.lower() for _name, addr in addresses_of(str(msg.get("from", "")))]
        values = [",".join(senders), *(" ".join(str(msg.get(name, "")).split()) for name in ("date", "subject"))]
    except Exception:  # noqa: BLE001 - unreadable headers: the bytes alone
        values = [head.decode("utf-8", "replace")]
    for value in values:
        digest.update(value.encode("utf-8", "surrogateescape") + b"\0")
    digest.update(body.replace(b"\r\n", b"\n").rstrip(b"\n"))
    return digest.hexdigest()


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


def too_complex(raw: bytes) -> str | None:
    """Why the message is too complex to read in full, or None. Counts boundary parameters and delimiter
    lines: upper bounds of the sections and parts, found without parsing anything."""
    head = len(header_block(raw))
    if head > MAX_HEADER_BYTES:
        return f"its header section is {head / 1024:,.0f} KiB (at most {MAX_HEADER_BYTES // 1024} KiB are read)"
    sections = len(_BOUNDARY.findall(raw))
    if sections > MAX_MULTIPARTS:
        return f"{sections:,} multipart sections, nested or not (at most {MAX_MULTIPARTS} are read)"
    parts = raw.count(b"\n--")
    if parts > MAX_PARTS:
        return f"{parts:,} MIME parts (at most {MAX_PARTS:,} are read)"
    return None


def headers_only(raw: bytes, why: str) -> Parsed:
    """The message read from its header block alone (the body is not parsed), with the reason."""
    try:
        msg = read_headers(raw)
        msg.set_payload("")
        items = tuple((str(k).lower(), header_text(str(k).lower(), v)) for k, v in msg.items())
    except Exception as err:  # noqa: BLE001 - not even the headers: route on nothing, keep the reason
        msg, items = Message(), ()
        why = f"{why}; headers unreadable too ({type(err).__name__})"
    headers = Headers(items)
    from_name, from_addr = _sender(headers)
    return Parsed(msg, headers, message_id_of(headers.first("message-id")), from_addr, from_name,
                  headers.first("subject"), f"could not be read in full: {why}", why)


def _sender(headers: Headers) -> tuple[str | None, str | None]:
    found = addresses_of(headers.first("from") or "")
    from_name, from_addr = (found[0][0] or None, found[0][1].lower() or None) if found else (None, None)
    return from_name, from_addr if from_addr and "@" in from_addr else None


def parse(raw: bytes) -> Parsed:
    """The message as routing reads it: never raises; what could not be read is said in `error`. The standard
    library's parse (compat32) alone: routing reads headers, and the classifier the MIME structure; the
    bodies, for the reply text, are read later (`bodies`)."""
    why = too_complex(raw)
    if why is not None:
        return headers_only(raw, why)
    try:
        read, note = _routing_part(raw)
        parsed = _parse(read)
        return replace(parsed, error="; ".join(filter(None, (note, parsed.error))) or None)
    except RecursionError:
        return headers_only(raw, "its MIME structure is nested too deep")
    except Exception as err:  # noqa: BLE001 - whatever the parser trips on, the headers still route it
        return headers_only(raw, f"{type(err).__name__} while parsing")


def _routing_part(raw: bytes) -> tuple[bytes, str | None]:
    """At most ROUTING_READ_BYTES of the message, cut at a line end, and the note saying so."""
    if len(raw) <= ROUTING_READ_BYTES:
        return raw, None
    cut = raw.rfind(b"\n", 0, ROUTING_READ_BYTES) + 1 or ROUTING_READ_BYTES
    return raw[:cut], f"read the first {cut / 2**20:.1f} MiB of {len(raw) / 2**20:.1f} MiB for routing"


def _parse(raw: bytes) -> Parsed:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    items = tuple((str(k).lower(), header_text(str(k).lower(), v)) for k, v in msg.items())
    headers = Headers(items)
    from_name, from_addr = _sender(headers)
    error = "MIME defects: " + ", ".join(sorted({type(d).__name__ for d in msg.defects})) if msg.defects else None
    return Parsed(msg, headers, message_id_of(headers.first("message-id")), from_addr, from_name,
                  headers.first("subject"), error)


def bodies(raw: bytes) -> tuple[str | None, str | None]:
    """(text, html) of the message by mail-parser (the standard library where mail-parser fails), for the
    reply text: read after routing, as routing does not need them. Never raises."""
    if too_complex(raw) is not None:
        return None, None
    read, _note = _routing_part(raw)
    try:
        mail = mailparser.parse_from_bytes(read)
        text, html = "\n".join(mail.text_plain) or None, "\n".join(mail.text_html) or None
    except Exception:  # noqa: BLE001 - mail-parser raises on some real bounces: read it ourselves
        try:
            text, html = _bodies_stdlib(email.message_from_bytes(read, policy=email.policy.compat32))
        except Exception:  # noqa: BLE001 - no body to read: the reply text is empty
            return None, None
    return (text[:MAX_BODY_CHARS] if text else None), (html[:MAX_BODY_CHARS] if html else None)
