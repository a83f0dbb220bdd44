"""Checks on what people type that every room applies the same way: one plain address, no line break in
a header value (header injection). A leaf, so set-up, settings and composing share one wording."""

from __future__ import annotations

import re
from email.utils import parseaddr

from bridge.errors import InputError

_ADDR = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]{2,63}$")
# What ends a line somewhere on the way (CR, LF, and what Python's str.splitlines also breaks at: VT, FF,
# FS, GS, RS, NEL, LINE and PARAGRAPH SEPARATOR), and NUL, which no header may hold.
_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00]")


def refuse_line_breaks(**fields: str | None) -> None:
    """A line break in a header value would let it add headers (e.g. Bcc): refuse, name the field."""
    for name, value in fields.items():
        if value is not None and (found := _BREAKS.search(value)):
            label = name.replace("_", " ")
            raise InputError(f"the {label} contains a line break or control character (U+{ord(found.group()):04X}), "
                             "which is not allowed in a mail header; nothing was queued")


def one_line(text: str | None) -> str | None:
    """Text from a received message made fit for a header we write (a reply's subject, the name we answer):
    every line break or NUL becomes a space."""
    return _BREAKS.sub(" ", text) if text is not None else None


def check_address(value: str, field: str) -> str:
    """One plain address (`name@domain`), or a clear error naming the field."""
    refuse_line_breaks(**{field: value})
    _name, addr = parseaddr(value)
    if not addr or not _ADDR.match(addr) or addr != value.strip():
        raise InputError(f"{field} {value!r} is not an e-mail address (expected name@domain)")
    return addr


def storable(text: str | None) -> str | None:
    """Text every database takes: bytes that were not UTF-8 (kept as lone surrogates when decoded with
    surrogateescape) become \\xNN escapes and NUL, which PostgreSQL refuses in text, becomes U+FFFD. Only for
    fields read from a message or an envelope: the raw message keeps its exact bytes."""
    if text is None:
        return None
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte (from a broken encoded-word)
        data = text.encode("utf-8", "surrogatepass")
    return data.decode("utf-8", "backslashreplace").replace("\x00", "\ufffd")
