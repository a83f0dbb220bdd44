"""Safe, bounded reading of an `email.message.Message`, shared by the classification modules.

Inbound mail may be hostile, huge or broken, and the parser may have produced compat32 or
EmailMessage objects with Header values or surrogates in them. Every helper here answers with
plain str and never raises, so the rules that use them can stay about mail, not about defences.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import Iterable, Iterator
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from typing import Any

from routing.addresses import addresses_of

Headers = list[tuple[str, str]]

# Bounds that keep one hostile or huge message from costing seconds: bounce texts are short and
# come first, so only the head of each part is looked at.
_MAX_LEAF_CHARS = 65_536
_MAX_TOTAL_CHARS = 262_144
_MAX_HEADER_CHARS = 16_384
_MAX_PARTS = 300
_MAX_DEPTH = 24
_MAX_TEXT_CHARS = 131_072

ADDR = r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+"
_ADDR_RE = re.compile(ADDR, re.IGNORECASE)
LOOSE_ADDR_RE = re.compile(r"[^\s<>;,\"()\[\]]+@[^\s<>;,\"()\[\]]+")  # also internationalized (RFC 6531)
_CTYPE_RE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,40}:[ \t]")
# A message attached whole: read as a part of its own, never as this message's parts.
ATTACHED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global", "message/partial"})


def clean(value: Any) -> str:
    """Header or payload value as a plain str: no surrogates, no Header objects."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return str(text)


def raw_headers(part: Message) -> Headers:
    """The part's headers as clean, unfolded, length-bounded (name, value) pairs, in order."""
    try:
        items = list(part.raw_items())
    except Exception:  # noqa: BLE001 - raw_items is on every Message, but be safe
        items = list(part.items())
    return [(clean(k), clean(v)[:_MAX_HEADER_CHARS].replace("\r", "").replace("\n", " ")) for k, v in items]


def bounded_view(msg: Message, leaf_chars: int = _MAX_LEAF_CHARS, total_chars: int = _MAX_TOTAL_CHARS) -> Message:
    """A compat32 copy with clean str headers and every leaf cut to its head.

    One representation for compat32 and EmailMessage input, safe for flufl.bounce (whose detectors
    call `.lower()` on header values), and bounded in size whatever the input is.
    """
    budget = [_MAX_PARTS]
    chars = [total_chars]

    def copy(part: Message, depth: int) -> Message:
        out = Message(policy=compat32)
        for name, value in raw_headers(part):
            out[name] = value
        with contextlib.suppress(Exception):
            out.set_default_type(part.get_default_type())
        budget[0] -= 1
        payload = part.get_payload()
        if isinstance(payload, list):
            children: list[Message] = []
            for child in payload:
                if budget[0] <= 0 or depth >= _MAX_DEPTH:
                    break
                if isinstance(child, Message):
                    children.append(copy(child, depth + 1))
            out.set_payload(children)
            try:
                out.preamble = clean(part.preamble)[:leaf_chars] if part.preamble else None
            except Exception:  # noqa: BLE001
                out.preamble = None
        else:
            text = payload if isinstance(payload, str) else clean(payload)  # surrogates kept: 8-bit bytes
            text = text[: max(0, min(leaf_chars, chars[0]))]
            chars[0] -= len(text)
            out.set_payload(text)
        return out

    return copy(msg, 0)


def parse_header_block(text: str) -> Headers:
    """Headers written out as text (a returned original's), parsed like a message's own."""
    try:
        parsed = HeaderParser(policy=compat32).parsestr(text.lstrip("\r\n"))
    except Exception:  # noqa: BLE001
        return []
    return raw_headers(parsed)


# --------------------------------------------------------------------------------------------
# headers and addresses


def header(headers: Headers, name: str) -> str | None:
    """The first value of a header, by case-blind name."""
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


def decoded(value: str | None) -> str:
    """RFC 2047-decoded header text, or the raw text when it will not decode."""
    if not value:
        return ""
    value = value[:2048]
    try:
        return clean(str(make_header(decode_header(value))))
    except Exception:  # noqa: BLE001
        return value


def bare(address: str) -> str:
    """An address without angle brackets and space, lower-cased: the form we compare."""
    return address.strip().strip("<>").strip().lower()


def sane_address(address: str) -> str | None:
    """The bare address when it looks like a real one, else None."""
    address = bare(address)
    return address if _ADDR_RE.fullmatch(address) else None


def addresses_in(value: str | None) -> list[tuple[str, str]]:
    """(display name, bare address) of every address in an address-list header value."""
    if not value:
        return []
    try:
        return [(name, bare(addr)) for name, addr in addresses_of(value) if "@" in addr]
    except Exception:  # noqa: BLE001
        return []


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """The non-empty values in first-seen order, each once."""
    seen: dict[str, None] = {}
    for value in values:
        if value and value not in seen:
            seen[value] = None
    return tuple(seen)


# --------------------------------------------------------------------------------------------
# parts and their text


def content_type(part: Message) -> str:
    """The content type, repaired when a broken header glued parameters onto it."""
    try:
        ctype = part.get_content_type()
    except Exception:  # noqa: BLE001
        return "text/plain"
    if _CTYPE_RE.fullmatch(ctype):
        return ctype
    match = _CTYPE_RE.match(ctype.strip())
    return match.group(0) if match else "text/plain"


def param(part: Message, name: str) -> str:
    """A Content-Type parameter, lower-cased, or "" when absent or unreadable."""
    try:
        value = part.get_param(name)
    except Exception:  # noqa: BLE001
        return ""
    if isinstance(value, tuple):
        value = value[2]
    return clean(value).strip().lower() if value else ""


def text_of(part: Message) -> str:
    """A leaf part's text, transfer-decoded and charset-decoded, never raising."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        data = None
    if data is None:
        raw = part.get_payload()
        return clean(raw) if isinstance(raw, str) else ""
    if not isinstance(data, bytes):
        return clean(data)
    charset = param(part, "charset") or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    try:
        return data.decode(charset, "replace")
    except Exception:  # noqa: BLE001
        return data.decode("latin-1")


def own_parts(msg: Message) -> Iterator[Message]:
    """Parts that belong to this message itself: never inside an attached message/rfc822."""
    stack = [msg]
    while stack:
        part = stack.pop(0)
        ctype = content_type(part)
        payload = part.get_payload()
        if part is not msg and ctype in ATTACHED_MESSAGE_TYPES:
            yield part
            continue
        yield part
        if isinstance(payload, list) and ctype.startswith("multipart/"):
            stack[0:0] = [p for p in payload if isinstance(p, Message)]


def readable_text(msg: Message, parts: list[Message]) -> str:
    """The human-readable text of `parts` (plain parts, else HTML stripped), newlines normalized."""
    plain: list[str] = []
    html: list[str] = []
    for part in parts:
        ctype = content_type(part)
        if isinstance(part.get_payload(), list) or _is_attachment(part):
            continue
        if ctype == "text/plain" or ctype.startswith("multipart/"):  # a multipart that lost its boundary
            plain.append(text_of(part))
        elif ctype == "text/html":
            html.append(_strip_html(text_of(part)))
    if msg.preamble and not plain:
        plain.append(clean(msg.preamble))
    chosen = plain if any(t.strip() for t in plain) else html
    return normalize_newlines("\n".join(chosen)[:_MAX_TEXT_CHARS])


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_attachment(part: Message) -> bool:
    try:
        return (part.get_content_disposition() or "") == "attachment"
    except Exception:  # noqa: BLE001
        return False


def _strip_html(html: str) -> str:
    html = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", html)
    html = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>|</tr\s*>|</li\s*>", "\n", html)
    html = re.sub(r"<[^>]+>", " ", html)
    html = re.sub(r"&nbsp;", " ", html)
    html = re.sub(r"&lt;", "<", html)
    html = re.sub(r"&gt;", ">", html)
    html = re.sub(r"&amp;", "&", html)
    return html
