"""Our Message-IDs and Outlook Thread-Index values.

Every Message-ID we send carries a signed conversation token, `<r.{random}.c{id}.{mac}@domain>`,
so a reply threads even when only that one ID survives in In-Reply-To or References. The MAC
(HMAC-SHA256, truncated) stops anybody from forging an ID that routes into another recruiter's
conversation. Pure functions: the key is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import time

_TOKEN = re.compile(r"^<?r\.([a-z0-9]{10,40})\.c(\d{1,18})\.([a-z0-9]{16})@([^<>@\s]+)>?$", re.IGNORECASE)
_FILETIME_EPOCH_OFFSET = 116_444_736_000_000_000  # 100 ns ticks between 1601-01-01 and 1970-01-01


def _mac(key: bytes, nonce: str, conversation_id: int) -> str:
    digest = hmac.new(key, f"mid:{nonce}:{conversation_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().lower()


def make_message_id(key: bytes, domain: str, conversation_id: int | None) -> str:
    """A new Message-ID; with a conversation it carries that conversation's signed token."""
    nonce = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    if conversation_id is None:
        return f"<r.{nonce}@{domain}>"
    return f"<r.{nonce}.c{conversation_id}.{_mac(key, nonce, conversation_id)}@{domain}>"


def conversation_of(key: bytes, message_id: str) -> int | None:
    """The conversation id signed into one of our Message-IDs, or None (not ours, or forged)."""
    match = _TOKEN.match(message_id.strip())
    if not match:
        return None
    nonce, conv, mac, _domain = match.groups()
    conversation_id = int(conv)
    if hmac.compare_digest(mac.lower(), _mac(key, nonce.lower(), conversation_id)):
        return conversation_id
    return None


def make_probe_token(key: bytes) -> str:
    """A token for `test loop` probes: proves a message from our own address is our own probe."""
    nonce = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return f"{nonce}.{_mac(key, nonce, 0)}"


def probe_token_valid(key: bytes, token: str) -> bool:
    nonce, _sep, mac = token.strip().partition(".")
    return bool(nonce and mac) and hmac.compare_digest(mac.lower(), _mac(key, nonce.lower(), 0))


def normalize_message_id(value: str) -> str:
    """`<local@domain>` with surrounding space removed; the domain part compared case-blind."""
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}"
    if not value.endswith(">"):
        value = f"{value}>"
    local, sep, domain = value[1:-1].rpartition("@")
    return f"<{local}@{domain.lower()}>" if sep else value


def new_thread_index(now: float | None = None) -> str:
    """An Outlook Thread-Index header block: 6 bytes of FILETIME and a 16-byte GUID, base64."""
    ticks = int((time.time() if now is None else now) * 10_000_000) + _FILETIME_EPOCH_OFFSET
    header = struct.pack(">Q", ticks)[:6] + secrets.token_bytes(16)
    return base64.b64encode(header).decode()


def child_thread_index(parent: str, parent_time: float, now: float | None = None) -> str:
    """A reply's Thread-Index: the parent's value plus a 5-byte child block of the time since."""
    raw = base64.b64decode(parent)
    delta = max(0, int(((time.time() if now is None else now) - parent_time) * 10_000_000))
    # MS-OXOMSG child block: a 1-bit resolution flag (0), 31 bits of delta >> 18, 8 random bits.
    block = struct.pack(">I", ((delta >> 18) & 0x7FFFFFFF)) + secrets.token_bytes(1)
    return base64.b64encode(raw + block).decode()


def thread_index_root(value: str) -> str | None:
    """The 22-byte header block of a Thread-Index, base64 (what identifies the thread)."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        return None
    return base64.b64encode(raw[:22]).decode() if len(raw) >= 22 else None
