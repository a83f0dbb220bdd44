"""Is an inbound message a human reply, an automatic message, or a bounce?

The router needs this before anything else (DESIGN.md, "Routing order"): a bounce marks our
outbound message undeliverable and is never a candidate's message; an automatic message is routed
like a reply but flagged and never answered automatically.

Layers, strongest first, so each decision names the signal that made it:

1. RFC 3464 delivery status notifications (multipart/report; report-type=delivery-status), read
   by our own parser of the message/delivery-status part, per recipient.
2. flufl.bounce for the non-standard bounces of many MTAs (Exim, qmail, Postfix without DSN,
   Exchange, Yahoo...). Its heuristic detectors misfire on ordinary mail (LLNL takes any
   ", x@y," in a body line), so its answer only counts when the headers look like a bounce.
3. Our own heuristics for what both miss: a daemon or null sender, or a bounce subject, together
   with delivery-failure wording or a returned original message; Amazon SES notifications (JSON).

A person talking about a bounce stays a reply: Re:/Fwd: subjects from a non-daemon sender, an
attached message/rfc822 (never read as this message's own parts), and a bounce-looking subject
from a mail program (User-Agent, In-Reply-To) do not count as bounce evidence.

Then the automatic-message signals (MDN, ARF, RFC 3834 Auto-Submitted, vendor auto-reply headers,
Precedence, list headers, null sender, auto-reply subjects). `X-Auto-Response-Suppress` is not
one of them: senders set it to ask *others* not to auto-reply.

Pure: no I/O. `classify` never raises; whatever goes wrong inside degrades to the best answer
the readable parts give, because a message we cannot classify must still be routed.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from functools import cached_property
from typing import Any

import flufl.bounce

__all__ = ["BounceInfo", "Classification", "classify"]


@dataclass(frozen=True)
class BounceInfo:
    """What a bounce says: who failed, which of our messages, why, and whether it is final."""

    recipients: tuple[str, ...]  # failed (or delayed) recipients, lower-cased, bare; Original-Recipient first
    original_message_id: str | None  # Message-ID of the returned original, "<...>", to find our outbound
    status: str | None  # RFC 3463, e.g. "5.1.1"; the remote server's code where the DSN's is generic
    diagnostic: str | None  # Diagnostic-Code, else the most telling line of the text; <= 300 chars
    # False when the address is not known bad: a delay, a 4.x.x / 4xx cause, or expiry after
    # retries (the MTA gave up on this message, yet the next one may go through; reason "expired").
    permanent: bool
    reason: str  # short label: "user unknown", "mailbox full", "delayed", "expired", "rejected as spam"...


@dataclass(frozen=True)
class Classification:
    """The decision and the signal that made it, for the routing log."""

    kind: str  # "reply" | "auto_reply" | "bounce"
    reason: str
    bounce: BounceInfo | None = None
    automatic: bool = False


REPLY = "reply"
AUTO_REPLY = "auto_reply"
BOUNCE = "bounce"

# Bounds that keep one hostile or huge message from costing seconds: bounce texts are short and
# come first, so only the head of each part is looked at.
_MAX_LEAF_CHARS = 65_536
_MAX_TOTAL_CHARS = 262_144
# flufl.bounce runs ~25 regexes on every body line, twice: it gets a smaller view still.
_FLUFL_LEAF_CHARS = 16_384
_FLUFL_TOTAL_CHARS = 65_536
_MAX_HEADER_CHARS = 16_384
_MAX_PARTS = 300
_MAX_DEPTH = 24
_MAX_TEXT_CHARS = 131_072
_MAX_OWN_CHARS = 16_384
_MAX_DIAGNOSTIC = 300

_ADDR = r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+"
_ADDR_RE = re.compile(_ADDR, re.IGNORECASE)
_LOOSE_ADDR_RE = re.compile(r"[^\s<>;,\"()\[\]]+@[^\s<>;,\"()\[\]]+")  # also internationalized (RFC 6531)
_STATUS_RE = re.compile(r"(?<![\w.#])#?([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)(?![\w-])")
_DSN_STATUS_RE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
_MSGID_RE = re.compile(r"<[^<>\s]+>")
_MSGID_LINE_RE = re.compile(r"^[ \t>]*(?:X-Original-)?Message-ID:[ \t]*(<[^<>\s]+>|[^\s<>]+@[^\s<>]+)", re.I | re.M)

# Senders that are mail systems, not people.
_DAEMON_LOCAL = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|mdaemon|postmaster|post[-_.]master|poostmaster|"
    r"mail[-_.]?delivery[-_.]?(?:system|subsystem|service)?|mail[-_.]?administrator|bounces?|"
    r"(?:e\d+_)?smtp[-_.]?mail[-_.]?service|mail[-_.]?system|mailadm|mailer|microsoftexchange[0-9a-f]{0,40})$",
    re.I,
)
_DAEMON_NAME = re.compile(
    r"mail(?:er)?[-_ ]?daemon|mail delivery (?:sub)?system|mail delivery service|mail deliver system|"
    r"mail administrator|postmaster|internet mail delivery|mail system|^microsoft outlook$",
    re.I,
)
_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|fwd?|aw|wg|sv|vs|tr|rv|rif|odp|antw|doorst|ynt|enc|res|r)\s*(?:\[\d+\])?\s*:", re.I
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|returned mail|returned to sender|delivery (?:status )?notification|"
    r"delivery status|delivery report|delivery (?:has )?failed|delivery fail|delivery problem|"
    r"failure notice|mail delivery|non[- ]?delivery|failed mail|mail error|mail system error|"
    r"could not be delivered|couldn't be delivered|not be delivered|delivery error|"
    r"warning: .*(?:delayed|not yet been delivered|could not send)|delayed mail|message delayed|"
    r"cannot send message|could not send message|postmaster notify|bounce (?:notification|message|report)|"
    r"\bbounced\b|email bounce|message you sent blocked|"
    r"mail could not|delivery failure|problem delivering|error sending your mail|message not delivered|"
    r"unzustellbar|nicht zustellbar|non remis|non distribuable|no entregado|non recapitato|onbestelbaar",
    re.I,
)
# Wording of a delivery failure, looked for in the bounce's own text (not in a quoted original).
_FAILURE_TEXT = re.compile(
    r"could not be delivered|couldn'?t be delivered|can ?not be delivered|was not delivered|"
    r"wasn'?t delivered|undeliverable|undelivered|delivery (?:to the following recipients? )?(?:has )?failed|"
    r"delivery failure|delivery has failed|failed to deliver|unable to deliver|not able to deliver|"
    r"permanent (?:error|failure|fatal)|fatal errors?|user unknown|unknown user|no such user|"
    r"mailbox (?:is )?(?:full|unavailable|not found|does not exist)|does not exist|address rejected|"
    r"recipient (?:address )?rejected|rejected (?:your|the) message|message (?:was )?rejected|"
    r"following (?:addresses|recipients?) (?:had|failed|was rejected|were rejected)|"
    r"(?:address|recipient)\(?e?s?\)? failed|delivery errors?|error(?:s)? (?:during|in) delivery|"
    r"returned mail|returning message|(?:message|mail) (?:has been|was) returned|intended recipient:|"
    r"(?:has|have) been delayed|not yet been delivered|will (?:be )?retr(?:y|ied)|still being retried|"
    r"could not send|cannot send|delivery (?:time )?expired|retry timeout|too long in (?:the )?queue|"
    r"been in the queue too long|host unknown|domain (?:not found|does not exist)|no mx|"
    r"over quota|quota exceeded|rejected recipient|trouble delivering|"
    r"delivery status notification|this is an automatically generated delivery|"
    r"error.{0,30}(?:while|when) (?:attempting|trying) to deliver|error delivering|could not be reached|"
    r"did not reach|failure reasons?|not accepted|"
    r"(?:^|\s)[45]\d\d[ -]#?[45]\.\d{1,3}\.\d{1,3}\b|"
    r"mail delivery (?:failed|system|software)|smtp error|remote server (?:returned|rejected)|"
    r"(?:^|\s)[45]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s)?.{0,40}"
    r"(?:user|mailbox|recipient|address|unknown|denied|rejected)",
    re.I | re.M,
)
_TEMPORARY_TEXT = re.compile(
    r"will (?:be )?retr(?:y|ied)|still being retried|not yet been delivered|has been delayed|"
    r"have been delayed|delivery (?:to .{0,80})?(?:is |has been )?delayed|warning message only|"
    r"do not need to resend|delayed \d+ hours|message delayed|delayed mail|"
    r"temporar(?:y|ily) (?:failure|error|problem|unavailable|deferred)|"
    r"try again later|will keep trying|deferred",
    re.I,
)
_EXPIRED_TEXT = re.compile(
    r"retry timeout exceeded|retry time not reached|delivery time expired|message expired|"
    r"envelope expired|expired after|has expired|been in the queue too long|too long in (?:the )?queue|"
    r"cannot send message for \d+ days|(?:could )?not (?:be |been )?delivered within|gave up (?:trying|after)|"
    r"retry limit exceeded|failed \d+ attempts|maximum (?:queue|delivery) time|timed? ?out.{0,40}giving up|"
    r"could not deliver .{0,40}for \d+ (?:days|hours)|unable to deliver .{0,40}for \d+ (?:days|hours)",
    re.I,
)
_DELAY_STRONG = re.compile(
    r"warning message only|will be retried|will retry|still being retried|not yet been delivered|"
    r"do not need to resend|has been delayed|have been delayed|delivery (?:is )?delayed|\(delay\)|"
    r"delayed mail|message delayed|will keep trying|will continue (?:trying|to try)",
    re.I,
)
_REPLY_CODE_RE = re.compile(r"(?:^|[\s:(\[<])([45][0-5]\d)(?=[\s,.)\]-]|$)(?!\d)", re.M)
_PERMANENT_TEXT = re.compile(r"permanent (?:error|failure|fatal)|fatal error|this is a permanent", re.I)
# Where the returned original starts in a plain-text bounce.
_ORIGINAL_MARKER = re.compile(
    r"^\s*(?:[-=_*#]{2,}.*\b(?:original|returned|bounced|undelivered|unsent|copy of|message follows|"
    r"headers? follows?|header of the original)\b"
    r"|.*\b(?:original|returned|undelivered) (?:message|mail|e-?mail)\b.*\b(?:follows?|below|attached|is following)\b"
    r"|(?:below this line is|this is) a copy of (?:the|your) (?:original )?message"
    r"|bounced e-?mail:|original message:?\s*$|returned message:?\s*$"
    r"|.*the header of the original message is following)",
    re.I,
)
_CTYPE_RE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,40}:[ \t]")
_ORIGINAL_FIRST = re.compile(r"(?i)(?:received|return-path|delivered-to|x-[\w-]+|message-id|date|from|to|subject):")
_DIAG_LINE = re.compile(
    r"\b[45]\d\d\b[ -]|[245]\.\d{1,3}\.\d{1,3}|unknown|does not exist|not found|no such|full|quota|rejected|"
    r"denied|refused|blocked|timed? ?out|expired|invalid|unavailable|failed|disabled|not permitted|spam|"
    r"too large|exceeds|retry|delayed|not accept|blacklist|reputation|policy|relay",
    re.I,
)
_DIAG_NOISE = re.compile(
    r"^(?:received|from|to|subject|date|message-id|return-path|content-|mime-version|x-[\w-]+|"
    r"reporting-mta|arrival-date|final-recipient|original-recipient|action|status|remote-mta)\s*:",
    re.I,
)

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:out of (?:the )?office|automatic reply|auto[- ]?reply|auto[- ]?response|"
    r"auto[- ]?respons|abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|"
    r"respuesta autom[áa]tica|risposta automatica|automatisch antwoord|autosvar|automaattinen vastaus|"
    r"odpowied[źz] automatyczna|resposta autom[áa]tica|automatick[áa] odpov[ěe][ďd])\b",
    re.I,
)
_NOREPLY_LOCAL = re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply)(?:[-_.+].*)?$", re.I)
_RETURNED_TYPES = {
    "message/rfc822",
    "message/global",
    "message/partial",
    "text/rfc822-headers",
    "message/rfc822-headers",
    "message/global-headers",
}
_DSN_TYPES = {"message/delivery-status", "message/global-delivery-status"}
_SUCCESS_ACTIONS = {"delivered", "relayed", "expanded"}
_PRECEDENCE_AUTO = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
# Headers that only automatic senders add. (X-Auto-Response-Suppress is a request, not a mark.)
_VENDOR_AUTO_HEADERS: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    ("X-Autoreply", "X-Autoreply header", lambda v: v.strip().lower() not in {"no", "false", "0"}),
    ("X-Autorespond", "X-Autorespond header", lambda v: v.strip().lower() not in {"no", "false", "0"}),
    ("X-AutoReply-From", "X-AutoReply-From header", lambda v: bool(v.strip())),
    ("X-Mail-Autoreply", "X-Mail-Autoreply header", lambda v: bool(v.strip())),
    ("X-Autogenerated", "X-Autogenerated header", lambda v: v.strip().lower() in {"reply", "yes", "true"}),
    ("X-FC-MachineGenerated", "X-FC-MachineGenerated header", lambda v: v.strip().lower() == "true"),
    ("X-POST-MessageClass", "X-POST-MessageClass: autoresponder", lambda v: "autoresponder" in v.lower()),
    ("X-Mailer", "X-Mailer: out-of-office responder", lambda v: bool(re.search(r"out of office|vacation", v, re.I))),
)

# flufl.bounce's own detector order (private, hence the getattr and the fallback in _flufl).
_FLUFL_DETECTORS: tuple[Any, ...] = tuple(getattr(getattr(flufl.bounce, "_scan", None), "_DETECTORS", ()) or ())
_DETECTOR_NAMES = {
    "DSN": "DSN",
    "Exim": "Exim",
    "Sina": "Sina",
    "Yahoo": "Yahoo",
    "Yale": "Yale",
    "SMTP32": "SMTP32",
    "Postfix": "Postfix",
    "Qmail": "qmail",
    "GroupWise": "GroupWise",
    "Microsoft": "Microsoft",
    "Caiwireless": "Caiwireless",
    "Exchange": "Exchange",
    "Netscape": "Netscape",
    "AOL": "AOL",
    "SimpleMatch": "SimpleMatch",
    "SimpleWarning": "SimpleWarning",
    "LLNL": "LLNL",
}
# Detectors that read any body line; their answers need more than a bounce-looking subject.
_LOOSE_DETECTORS = {"LLNL", "SimpleMatch", "SimpleWarning"}


# --------------------------------------------------------------------------------------------
# entry point


def classify(msg: Message, envelope_from: str | None = None) -> Classification:
    """Decide reply / auto_reply / bounce; never raises (a broken message is still routed)."""
    try:
        view = _view(msg)
    except Exception:  # noqa: BLE001 - the input may be anything a parser produced
        return _fallback(msg, envelope_from)
    try:
        return _Classifier(view, envelope_from).run()
    except Exception:  # noqa: BLE001 - degrade to the header-only signals
        return _fallback(msg, envelope_from)


def _fallback(msg: Message, envelope_from: str | None) -> Classification:
    """Header-only answer for a message the full classifier choked on."""
    try:
        headers = _raw_headers(msg)
        auto = _auto_header_signal(headers, envelope_from)
        if auto:
            return Classification(AUTO_REPLY, auto, automatic=True)
    except Exception:  # noqa: BLE001
        pass
    return Classification(REPLY, "no automatic or bounce signal (message partly unreadable)")


# --------------------------------------------------------------------------------------------
# a bounded, normalized copy of the message


def _clean(value: Any) -> str:
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


def _raw_headers(part: Message) -> list[tuple[str, str]]:
    try:
        items = list(part.raw_items())
    except Exception:  # noqa: BLE001 - raw_items is on every Message, but be safe
        items = list(part.items())
    return [(_clean(k), _clean(v)[:_MAX_HEADER_CHARS].replace("\r", "").replace("\n", " ")) for k, v in items]


def _view(msg: Message, leaf_chars: int = _MAX_LEAF_CHARS, total_chars: int = _MAX_TOTAL_CHARS) -> Message:
    """A compat32 copy with clean str headers and every leaf cut to its head.

    One representation for compat32 and EmailMessage input, safe for flufl.bounce (whose detectors
    call `.lower()` on header values), and bounded in size whatever the input is.
    """
    budget = [_MAX_PARTS]
    chars = [total_chars]

    def copy(part: Message, depth: int) -> Message:
        out = Message(policy=compat32)
        for name, value in _raw_headers(part):
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
                out.preamble = _clean(part.preamble)[:leaf_chars] if part.preamble else None
            except Exception:  # noqa: BLE001
                out.preamble = None
        else:
            text = payload if isinstance(payload, str) else _clean(payload)  # surrogates kept: 8-bit bytes
            text = text[: max(0, min(leaf_chars, chars[0]))]
            chars[0] -= len(text)
            out.set_payload(text)
        return out

    return copy(msg, 0)


# --------------------------------------------------------------------------------------------
# small helpers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


def _decoded(value: str | None) -> str:
    """RFC 2047-decoded header text, or the raw text when it will not decode."""
    if not value:
        return ""
    value = value[:2048]
    try:
        return _clean(str(make_header(decode_header(value))))
    except Exception:  # noqa: BLE001
        return value


def _bare(address: str) -> str:
    return address.strip().strip("<>").strip().lower()


def _sane_address(address: str) -> str | None:
    bare = _bare(address)
    return bare if _ADDR_RE.fullmatch(bare) else None


def _content_type(part: Message) -> str:
    """The content type, repaired when a broken header glued parameters onto it."""
    try:
        ctype = part.get_content_type()
    except Exception:  # noqa: BLE001
        return "text/plain"
    if _CTYPE_RE.fullmatch(ctype):
        return ctype
    match = _CTYPE_RE.match(ctype.strip())
    return match.group(0) if match else "text/plain"


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except Exception:  # noqa: BLE001
        return ""
    if isinstance(value, tuple):
        value = value[2]
    return _clean(value).strip().lower() if value else ""


def _text_of(part: Message) -> str:
    """A leaf part's text, transfer-decoded and charset-decoded, never raising."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        data = None
    if data is None:
        raw = part.get_payload()
        return _clean(raw) if isinstance(raw, str) else ""
    if not isinstance(data, bytes):
        return _clean(data)
    charset = _param(part, "charset") or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    try:
        return data.decode(charset, "replace")
    except Exception:  # noqa: BLE001
        return data.decode("latin-1")


def _strip_html(html: str) -> str:
    html = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", html)
    html = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>|</tr\s*>|</li\s*>", "\n", html)
    html = re.sub(r"<[^>]+>", " ", html)
    html = re.sub(r"&nbsp;", " ", html)
    html = re.sub(r"&lt;", "<", html)
    html = re.sub(r"&gt;", ">", html)
    html = re.sub(r"&amp;", "&", html)
    return html


def _own_parts(msg: Message) -> Iterator[Message]:
    """Parts that belong to this message itself: never inside an attached message/rfc822."""
    stack = [msg]
    while stack:
        part = stack.pop(0)
        ctype = _content_type(part)
        payload = part.get_payload()
        if part is not msg and ctype in {"message/rfc822", "message/global", "message/partial"}:
            yield part
            continue
        yield part
        if isinstance(payload, list) and ctype.startswith("multipart/"):
            stack[0:0] = [p for p in payload if isinstance(p, Message)]


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line[:1] in {" ", "\t"} and lines and lines[-1].strip():
            lines[-1] = lines[-1].rstrip() + " " + line.strip()
        else:
            lines.append(line)
    return lines


def _normalize_msgid(value: str) -> str | None:
    value = _clean(value).strip()
    if not value:
        return None
    match = _MSGID_RE.search(value)
    if match:
        return match.group(0)
    token = value.split()[0].strip("<>")
    return f"<{token}>" if "@" in token else None


# --------------------------------------------------------------------------------------------
# RFC 3464 delivery-status


@dataclass
class _DsnRecipient:
    address: str | None
    action: str | None
    status: str | None
    diagnostic: str | None


def _dsn_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser made one Message per block of fields
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                blocks.append("\n".join(f"{k}: {v}" for k, v in _raw_headers(block)))
                body = block.get_payload()
                if isinstance(body, str) and body.strip():
                    blocks.append(body)
        return "\n\n".join(blocks)
    return _text_of(part)


def _parse_dsn(text: str) -> list[_DsnRecipient]:
    """Per-recipient fields of a message/delivery-status body (blocks split by blank lines)."""
    records: list[_DsnRecipient] = []
    fields: dict[str, str] = {}

    def flush() -> None:
        if not fields:
            return
        if {"final-recipient", "original-recipient", "x-actual-recipient", "action", "status"} & fields.keys():
            address = None
            for key in ("original-recipient", "final-recipient", "x-actual-recipient"):
                raw = fields.get(key, "")
                raw = raw.split(";", 1)[1] if ";" in raw else raw
                match = _LOOSE_ADDR_RE.search(_decoded(raw) if "=?" in raw else raw)
                if match:
                    address = _bare(match.group(0))
                    break
            action = _normal_action(fields.get("action", ""))
            status_match = _DSN_STATUS_RE.search(fields.get("status", ""))
            status = status_match.group(0) if status_match else None
            diagnostic = fields.get("diagnostic-code") or None
            if diagnostic:
                diagnostic = re.sub(r"^\s*[\w-]+\s*;\s*", "", diagnostic).strip()
            if action is None and status:
                action = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[0])
            records.append(_DsnRecipient(address, action, status, diagnostic))
        fields.clear()

    for line in _unfold(text):
        if not line.strip():
            flush()
            continue
        name, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name.strip()):
            key = name.strip().lower()
            if key in fields and key in {"final-recipient", "original-recipient", "action"}:
                flush()  # a new recipient without the blank line between
            fields.setdefault(key, value.strip())
    flush()
    return records


# --------------------------------------------------------------------------------------------
# the classifier


class _Classifier:
    """One classification run over a normalized view; attributes cache what several rules read."""

    def __init__(self, view: Message, envelope_from: str | None) -> None:
        self.msg = view
        self.envelope_from = envelope_from
        self.headers = _raw_headers(view)
        self.ctype = _content_type(view)
        self.report_type = _param(view, "report-type") if self.ctype == "multipart/report" else ""
        self.subject = _decoded(_header(self.headers, "Subject")).strip()
        from_value = _header(self.headers, "From") or ""
        self.from_name, from_addr = parseaddr(_decoded(from_value))
        self.from_addr = _bare(from_addr)
        if not self.from_addr and "<>" in from_value:
            self.from_addr = ""
        self.parts = list(_own_parts(view))
        self._text: str | None = None
        self._own: str | None = None
        self._tail = ""
        self.failures: list[str] = []

    # --- evidence ----------------------------------------------------------------------------

    @property
    def null_sender(self) -> bool:
        if self.envelope_from is not None and self.envelope_from.strip().strip("<>").strip() == "":
            return True
        return _is_null_path(_header(self.headers, "Return-Path"))

    @property
    def daemon_sender(self) -> bool:
        """From (or Return-Path) is a mail system: MAILER-DAEMON, postmaster, "Mail Delivery System"."""
        local = self.from_addr.split("@", 1)[0]
        if local and _DAEMON_LOCAL.match(local):
            return True
        if self.from_name and _DAEMON_NAME.search(self.from_name):
            return True
        from_value = _header(self.headers, "From")
        if from_value is not None and from_value.strip() and not self.from_addr and "<>" in from_value:
            return True  # From: "Mail Delivery System" <>
        return_path = _bare(_header(self.headers, "Return-Path") or "")
        return bool(return_path) and bool(re.match(r"mailer-daemon\b", return_path))

    @property
    def noreply_sender(self) -> bool:
        local = self.from_addr.split("@", 1)[0]
        return bool(local) and bool(_NOREPLY_LOCAL.match(local))

    @property
    def sender_evidence(self) -> bool:
        return self.null_sender or self.daemon_sender

    @property
    def reply_subject(self) -> bool:
        return bool(_REPLY_PREFIX.match(self.subject))

    @property
    def subject_evidence(self) -> bool:
        return bool(self.subject) and not self.reply_subject and bool(_BOUNCE_SUBJECT.search(self.subject))

    @property
    def mua_marks(self) -> bool:
        """Signs of a person's mail program; they overrule a bounce-looking subject alone."""
        return _header(self.headers, "User-Agent") is not None or _header(self.headers, "In-Reply-To") is not None

    @property
    def human_reply(self) -> bool:
        """A person answering or forwarding: Re:/Fwd: subject from someone who is not a mail system."""
        return self.reply_subject and not self.daemon_sender

    def returned_parts(self) -> list[Message]:
        return [p for p in self.parts[1:] if _content_type(p) in _RETURNED_TYPES]

    # --- text ---------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The message's own human-readable text (plain parts, else HTML stripped)."""
        if self._text is None:
            plain: list[str] = []
            html: list[str] = []
            for part in self.parts:
                ctype = _content_type(part)
                if isinstance(part.get_payload(), list) or _is_attachment(part):
                    continue
                if ctype == "text/plain" or ctype.startswith("multipart/"):  # a multipart that lost its boundary
                    plain.append(_text_of(part))
                elif ctype == "text/html":
                    html.append(_strip_html(_text_of(part)))
            if self.msg.preamble and not plain:
                plain.append(_clean(self.msg.preamble))
            chosen = plain if any(t.strip() for t in plain) else html
            self._text = "\n".join(chosen)[:_MAX_TEXT_CHARS].replace("\r\n", "\n").replace("\r", "\n")
        return self._text

    @property
    def own_text(self) -> str:
        """The bounce's own words: text before a returned original, without ">" quoted lines."""
        if self._own is None:
            lines = self.text.split("\n")
            cut = len(lines)
            for index, line in enumerate(lines):
                if index > 0 and (_ORIGINAL_MARKER.match(line) or (index > 2 and _starts_header_block(lines, index))):
                    cut = index
                    break
            own = "\n".join(line for line in lines[:cut] if not line.lstrip().startswith(">"))
            self._own = own[:_MAX_OWN_CHARS]  # what an MTA says about a failure is short
            self._tail = "\n".join(lines[cut:])
        return self._own

    @property
    def tail_text(self) -> str:
        """The text after the bounce's own words: the returned original, when inline."""
        _ = self.own_text
        return self._tail

    # --- run ----------------------------------------------------------------------------------

    def run(self) -> Classification:
        bounce = self._safe("bounce", self._bounce)
        if bounce is not None:
            return bounce
        auto = self._safe("auto-reply", self._auto_reply)
        if auto is not None:
            return auto
        note = f" ({'; '.join(self.failures)})" if self.failures else ""
        return Classification(REPLY, "no automatic or bounce signal" + note)

    def _safe(self, name: str, rule: Callable[[], Classification | None]) -> Classification | None:
        """Run one rule; a rule that breaks is skipped and named in the final reason."""
        try:
            return rule()
        except Exception as err:  # noqa: BLE001 - one broken rule must not hide the others
            self.failures.append(f"{name} check failed: {type(err).__name__}")
            return None

    # --- bounce -------------------------------------------------------------------------------

    def _dsn_parts(self) -> list[Message]:
        return [p for p in self.parts if _content_type(p) in _DSN_TYPES]

    def _bounce(self) -> Classification | None:
        dsn_parts = self._dsn_parts()
        is_report = self.report_type == "delivery-status"
        # A delivery-status part outside a multipart/report counts unless a person seems to have
        # attached it: a Re:/Fwd: subject, or a sender address with nothing bounce-like about it.
        loose_dsn = dsn_parts and not self.human_reply
        loose_dsn = loose_dsn and (self.sender_evidence or self.subject_evidence or not self.from_addr)
        if is_report or loose_dsn:
            records: list[_DsnRecipient] = []
            for part in dsn_parts:
                records.extend(self._safe_records(part))
            failed = [r for r in records if r.action == "failed"]
            delayed = [r for r in records if r.action == "delayed"]
            done = [r for r in records if r.action in _SUCCESS_ACTIONS]
            if done and not failed and not delayed:
                return None  # a success notice: auto_reply, decided below
            if records or is_report:
                reason = "multipart/report; report-type=delivery-status"
                if not is_report:
                    reason = f"{_content_type(dsn_parts[0])} part"
                return self._bounce_result(reason, failed, delayed)
        ses = self._ses_notification()
        if ses is not None and ses.get("notificationType") == "Bounce":
            return self._ses_bounce(ses)
        if self.human_reply:
            return None
        failed_header = bool(_header(self.headers, "X-Failed-Recipients"))  # only Exim's bounces carry it
        structural = failed_header or bool(self.returned_parts())
        sender, subject = self.sender_evidence, self.subject_evidence and not self.mua_marks
        if not (sender or subject or structural):
            return None  # nothing in the headers or structure looks like a bounce
        failure_words = bool(_FAILURE_TEXT.search(self.own_text))
        if self.noreply_sender and structural and failure_words:
            return self._bounce_result("no-reply sender with delivery-failure text and returned original", [], [])
        if not (sender or subject or failed_header):
            return None  # flufl.bounce reads attached messages too: a forwarded bounce is no bounce
        detector, temporary, permanent = self._flufl()
        if detector and self._flufl_credible(detector, sender, subject, failed_header, failure_words):
            return self._bounce_result(f"flufl.bounce ({detector})", [], [], flufl=(temporary, permanent))
        if failed_header:
            return self._bounce_result("X-Failed-Recipients header", [], [])
        if sender and subject:
            return self._bounce_result("mail-system sender and bounce subject", [], [])
        if sender and failure_words:
            who = "null sender" if self.null_sender and not self.daemon_sender else "mail-system sender"
            return self._bounce_result(f"{who} with delivery-failure text", [], [])
        if subject and failure_words and (structural or self._quotes_original()):
            return self._bounce_result("bounce subject with delivery-failure text and returned original", [], [])
        return None

    def _flufl_credible(
        self, detector: str, sender: bool, subject: bool, failed_header: bool, failure_words: bool
    ) -> bool:
        """Whether flufl.bounce's answer counts, given how bounce-like the headers are.

        Its MTA-specific detectors need one bounce sign in the headers; the loose ones (SimpleMatch,
        SimpleWarning) also need failure wording, and LLNL (any ", x@y," line) needs both signs.
        """
        if failed_header or (sender and subject):
            return True
        if detector == "LLNL":
            return False
        if detector not in _LOOSE_DETECTORS:
            return sender or subject
        return failure_words  # SimpleMatch/SimpleWarning quote an MTA's own words; a person rarely pastes them

    def _quotes_original(self) -> bool:
        return bool(re.search(r"(?im)^(?:message-id|received|from|to|subject):", self.tail_text))

    def _safe_records(self, part: Message) -> list[_DsnRecipient]:
        try:
            return _parse_dsn(_dsn_text(part))
        except Exception:  # noqa: BLE001
            return []

    def _flufl(self) -> tuple[str | None, set[str], set[str]]:
        """flufl.bounce's detectors in its own order, naming the one that answered.

        `all_failures` stops at the first detector that raises (Yale indexes an empty From,
        Sina calls `.lower()` on a Header); running the list ourselves skips only that detector.
        Without the list (a future flufl.bounce), the public call is used.
        """
        small = _view(self.msg, _FLUFL_LEAF_CHARS, _FLUFL_TOTAL_CHARS)
        if not _FLUFL_DETECTORS:
            try:
                temporary, permanent = flufl.bounce.all_failures(small)
            except Exception:  # noqa: BLE001
                return None, set(), set()
            temp, perm = _addresses(temporary), _addresses(permanent)
            return ("library" if temp or perm else None), temp, perm
        for detector_class in _FLUFL_DETECTORS:
            try:
                temporary, permanent = detector_class().process(small)
            except Exception:  # noqa: BLE001 - one broken detector must not hide the others
                continue
            temp, perm = _addresses(temporary), _addresses(permanent)
            if temp or perm:
                name = getattr(detector_class, "__name__", "detector")
                return _DETECTOR_NAMES.get(name, name), temp, perm
        return None, set(), set()

    def _bounce_result(
        self,
        reason: str,
        failed: list[_DsnRecipient],
        delayed: list[_DsnRecipient],
        flufl: tuple[set[str], set[str]] | None = None,
    ) -> Classification:
        own = self.own_text
        expired_text = bool(_EXPIRED_TEXT.search(own))
        # DSN per-recipient facts first. A failure after the retry period (X.4.7, "retry timeout
        # exceeded") is not final for the address: the next message may well go through.
        permanent_records = [
            r
            for r in failed
            if not (r.status or "").startswith("4")
            and not _is_expiry_status(r.status)
            and not _EXPIRED_TEXT.search(r.diagnostic or "")
            and not (expired_text and (r.status is None or r.status[2:] in {"0.0", "4.0"}))
        ]
        chosen = permanent_records or failed or delayed
        recipients = _unique(r.address for r in chosen if r.address)
        status = next((_best_status(r) for r in chosen if r.status and r.status[0] in "45"), None)
        if status is None:
            status = next((_best_status(r) for r in chosen if r.status), None)
        diagnostic = next((r.diagnostic for r in chosen if r.diagnostic), None)
        permanent = bool(permanent_records) if failed or delayed else self._text_permanence(flufl, status)

        if not recipients:
            recipients = self._heuristic_recipients(flufl)
        if status is None:
            status = self._text_status()
            if not (failed or delayed):
                permanent = self._text_permanence(flufl, status)
        elif status[2:] == "0.0":  # generic; the human-readable part may quote the server's own code
            text_status = self._text_status()
            if text_status and text_status[0] == status[0]:
                status = text_status
        if diagnostic is None:
            diagnostic = self._text_diagnostic()
        if diagnostic:
            diagnostic = re.sub(r"\s+", " ", diagnostic).strip()[:_MAX_DIAGNOSTIC] or None
        label = _bounce_reason(status, diagnostic, own, permanent, bool(delayed and not failed), expired_text)
        info = BounceInfo(
            recipients=recipients,
            original_message_id=self._original_message_id(),
            status=status,
            diagnostic=diagnostic,
            permanent=permanent,
            reason=label,
        )
        return Classification(BOUNCE, reason, bounce=info, automatic=True)

    def _text_permanence(self, flufl: tuple[set[str], set[str]] | None, status: str | None) -> bool:
        """Final or not, for a bounce without DSN actions.

        Not final: expiry after retries, a warning about delay, a 4.x.x status or only 4xx SMTP
        replies (the cause was temporary even when the MTA then gave up). Final: 5.x.x, 5xx, or
        "permanent error" wording.
        """
        own = self.own_text + "\n" + self.subject
        if _EXPIRED_TEXT.search(own) or _is_expiry_status(status) or _DELAY_STRONG.search(own):
            return False
        if status:
            return status.startswith("5")
        codes = {m.group(1)[0] for m in _REPLY_CODE_RE.finditer(own)}
        if "5" in codes:
            return True
        if "4" in codes:
            return False
        if _PERMANENT_TEXT.search(own):
            return True
        if flufl is not None and flufl[0] and not flufl[1]:
            return False
        return not _TEMPORARY_TEXT.search(own)

    def _text_status(self) -> str | None:
        own = self.own_text
        found = [m for m in _STATUS_RE.finditer(own)]
        for match in found:
            if match.group(1) in "45":
                return f"{match.group(1)}.{match.group(2)}.{match.group(3)}"
        return None

    def _text_diagnostic(self) -> str | None:
        lines = [line.strip() for line in self.own_text.split("\n")]
        best: str | None = None
        for line in lines:
            if not line or len(line) < 6 or _DIAG_NOISE.match(line) or not _DIAG_LINE.search(line):
                continue
            if re.search(r"\b[45]\d\d\b[ -]|[45]\.\d{1,3}\.\d{1,3}", line):
                return line
            if best is None:
                best = line
        return best

    def _heuristic_recipients(self, flufl: tuple[set[str], set[str]] | None) -> tuple[str, ...]:
        """flufl's addresses, else the text's, first without any address that is us or the sender.

        flufl's loose detectors and our patterns also pick up the sender, our own address or a
        Message-ID; anonymized samples, though, sometimes send the bounce to the failed address
        itself, so a second round drops only the IDs.
        """
        for ignore in (self.not_recipients, self.message_id_addresses):
            if flufl is not None:
                perm, temp = flufl[1] - ignore, flufl[0] - ignore
                if perm or temp:
                    return tuple(sorted(perm or temp))
            found = self._text_recipients(ignore)
            if found:
                return found
        return ()

    def _text_recipients(self, ignore: set[str]) -> tuple[str, ...]:
        """Failed recipients named in a plain-text bounce, else the returned original's only To."""
        own = self.own_text
        failed_header = _decoded(_header(self.headers, "X-Failed-Recipients"))
        if failed_header:  # Exim; may be RFC 2047-encoded for an internationalized address
            tokens = [_bare(token) for token in re.split(r"[,\s]+", failed_header) if "@" in token]
            found = _unique(token for token in tokens if token not in ignore)
            if found:
                return found
        patterns = (
            r"(?im)^\s*(?:final|original)-recipient:\s*(?:rfc822|utf-8)?;?\s*<?(" + _ADDR + r")",
            r"(?im)rcpt to:\s*<?(" + _ADDR + r")",
            r"(?im)^\s*<(" + _ADDR + r")>\s*:",
            r"(?im)^\s*(?:--?|\*|\u2022)?\s*<?(" + _ADDR + r")>?\s*(?::|\.\.\.|\[|\(|\son\s|$)",
            r"(?i)(?:deliver(?:ed|y)?|sent|message|mail)\s+to\s+<?(" + _ADDR + r")",
            r"(?i)(?:recipient|address(?:ee)?|user|mailbox)[^\n<@]{0,40}<(" + _ADDR + r")>",
            r"(?i)<?(" + _ADDR + r")>?[^\n]{0,60}(?:unknown|does not exist|not found|rejected|failed|full|quota)",
        )
        for pattern in patterns:
            found = _unique(
                m.group(1).lower()
                for m in re.finditer(pattern, own)
                if m.group(1).lower() not in ignore
                and _bare(m.group(1)) not in ignore
                and not _is_daemon_address(m.group(1))
            )
            if found:
                return found
        to = self._original_header("To")
        if to:
            addresses = [a.lower() for _, a in getaddresses([to]) if _sane_address(a)]
            if len(addresses) == 1:
                return (addresses[0],)
        return ()

    @cached_property
    def message_id_addresses(self) -> set[str]:
        """Message-IDs look like addresses; they never are the failed recipient."""
        ids = {_bare(m.group(1)) for m in _MSGID_LINE_RE.finditer(self.text)}
        for value in (_header(self.headers, "Message-ID"), self._original_message_id()):
            if value:
                ids.add(_bare(value))
        return {i for i in ids if i}

    @cached_property
    def not_recipients(self) -> set[str]:
        """Addresses a bounce names that are not the failed recipient: us, the sender, IDs."""
        ignore = {self.from_addr} | self.message_id_addresses
        for name in ("To", "Cc", "Delivered-To", "X-Original-To"):
            ignore.update(a for _, a in _addresses_in(_header(self.headers, name)))
        for name in ("From", "Sender", "Return-Path", "Reply-To"):
            ignore.update(a for _, a in _addresses_in(self._original_header(name)))
        return {a for a in ignore if a}

    @cached_property
    def original_headers(self) -> list[list[tuple[str, str]]]:
        """Header lists of the returned original, from whichever shape the MTA returned it in."""
        found: list[list[tuple[str, str]]] = []
        for part in self.parts[1:]:
            ctype = _content_type(part)
            payload = part.get_payload()
            if ctype in _RETURNED_TYPES:
                if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                    inner = payload[0]
                    headers = _raw_headers(inner)
                    body = inner.get_payload()
                    if not _header(headers, "Message-ID") and isinstance(body, str) and _looks_like_headers(body):
                        headers += _parse_header_block(body)  # a blank line before the original's headers
                    found.append(headers)
                else:
                    found.append(_parse_header_block(_text_of(part)))
            elif ctype in _DSN_TYPES:
                for block in payload if isinstance(payload, list) else []:
                    headers = _raw_headers(block) if isinstance(block, Message) else []
                    if _header(headers, "Message-ID"):
                        found.append(headers)  # a missing boundary glued the original onto the report
            else:
                headers = _raw_headers(part)
                if _header(headers, "Message-ID") and (_header(headers, "From") or _header(headers, "Received")):
                    found.append(headers)  # the part's own header block is the original's
                elif not isinstance(payload, list) and ctype == "text/plain":
                    body = _text_of(part)
                    if _looks_like_headers(body):
                        found.append(_parse_header_block(body))
        return found

    def _original_header(self, name: str) -> str | None:
        for headers in self.original_headers:
            value = _header(headers, name)
            if value:
                return value
        match = re.search(rf"(?im)^{re.escape(name)}:[ \t]*(.+)$", self.tail_text)
        return match.group(1).strip() if match else None

    def _original_message_id(self) -> str | None:
        for headers in self.original_headers:
            value = _header(headers, "Message-ID")
            if value:
                normalized = _normalize_msgid(value)
                if normalized:
                    return normalized
        own_msgid = _normalize_msgid(_header(self.headers, "Message-ID") or "")
        for match in _MSGID_LINE_RE.finditer(self.text):
            normalized = _normalize_msgid(match.group(1))
            if normalized and normalized != own_msgid:
                return normalized
        return None

    # --- Amazon SES notifications (SNS e-mail subscription): JSON in the body --------------

    def _ses_notification(self) -> dict[str, Any] | None:
        if not (_header(self.headers, "x-amz-sns-message-id") or self.from_addr.endswith("@sns.amazonaws.com")):
            return None
        body = self.text.strip()
        start = body.find("{")
        if start < 0:
            return None
        try:
            data, _ = json.JSONDecoder(strict=False).raw_decode(body[start:])
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            try:
                data = json.loads(data["Message"], strict=False)
            except ValueError:
                return None
        return data if isinstance(data, dict) and "notificationType" in data else None

    def _ses_bounce(self, data: dict[str, Any]) -> Classification:
        bounce = data.get("bounce") if isinstance(data.get("bounce"), dict) else {}
        items = [r for r in bounce.get("bouncedRecipients", []) if isinstance(r, dict)]
        recipients = _unique(_bare(str(r.get("emailAddress", ""))) for r in items if r.get("emailAddress"))
        status_match = _DSN_STATUS_RE.search(" ".join(str(r.get("status", "")) for r in items))
        status = status_match.group(0) if status_match else None
        diagnostic = next((str(r["diagnosticCode"]) for r in items if r.get("diagnosticCode")), None)
        if diagnostic:
            diagnostic = re.sub(r"^\s*[\w-]+\s*;\s*", "", diagnostic).strip()[:_MAX_DIAGNOSTIC]
        permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
        mail = data.get("mail") if isinstance(data.get("mail"), dict) else {}
        common = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
        message_id = None
        for header in mail.get("headers", []) if isinstance(mail.get("headers"), list) else []:
            if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
                message_id = _normalize_msgid(str(header.get("value", "")))
        if message_id is None and common.get("messageId"):
            message_id = _normalize_msgid(str(common["messageId"]))
        label = _bounce_reason(status, diagnostic, "", permanent, False, False)
        info = BounceInfo(recipients, message_id, status, diagnostic, permanent, label)
        return Classification(BOUNCE, "Amazon SES bounce notification", bounce=info, automatic=True)

    # --- automatic ----------------------------------------------------------------------------

    def _auto_reply(self) -> Classification | None:
        if self.report_type == "disposition-notification" or any(
            _content_type(p) in {"message/disposition-notification", "message/global-disposition-notification"}
            for p in self.parts
        ):
            return _auto("MDN (disposition-notification)")
        if self.report_type == "feedback-report" or any(
            _content_type(p) == "message/feedback-report" for p in self.parts
        ):
            return _auto("ARF feedback report")
        records = [r for p in self._dsn_parts() for r in self._safe_records(p)]
        if records and all(r.action in _SUCCESS_ACTIONS for r in records):
            return _auto("delivery success notification")
        ses = self._ses_notification()
        if ses is not None:
            kind = str(ses.get("notificationType"))
            if kind == "Delivery":
                return _auto("delivery success notification")
            if kind == "Complaint":
                return _auto("feedback report (Amazon SES complaint)")
            return _auto(f"Amazon SES notification ({kind})")
        signal = _auto_header_signal(self.headers, self.envelope_from)
        if signal:
            return _auto(signal)
        if _AUTO_SUBJECT.match(self.subject):
            return _auto(f"auto-reply subject ({self.subject[:40]!r})")
        if self.noreply_sender:
            return _auto("no-reply sender address")
        return None


def _auto(reason: str) -> Classification:
    return Classification(AUTO_REPLY, reason, automatic=True)


def _auto_header_signal(headers: list[tuple[str, str]], envelope_from: str | None) -> str | None:
    """The first header that marks a message automatic, by RFC 3834 and common practice."""
    auto_submitted = (_header(headers, "Auto-Submitted") or "").split(";")[0].split("(")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":  # RFC 3834; parameters and comments dropped
        return f"Auto-Submitted: {auto_submitted}"
    for name, reason, test in _VENDOR_AUTO_HEADERS:
        value = _header(headers, name)
        if value is not None and test(value):
            return reason
    precedence = (_header(headers, "Precedence") or "").strip().lower()
    if precedence in _PRECEDENCE_AUTO:
        return f"Precedence: {precedence}"
    for name in ("List-Id", "List-Unsubscribe", "List-Post"):
        if _header(headers, name) is not None:
            return f"{name} header"
    if envelope_from is not None and envelope_from.strip().strip("<>").strip() == "":
        return "null sender"
    if _is_null_path(_header(headers, "Return-Path")):
        return "null sender"
    return None


# --------------------------------------------------------------------------------------------
# bounce helpers


def _addresses(values: Any) -> set[str]:
    found: set[str] = set()
    for value in values or ():
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        address = _sane_address(text)
        if address:
            found.add(address)
    return found


def _addresses_in(value: str | None) -> list[tuple[str, str]]:
    if not value:
        return []
    try:
        return [(name, _bare(addr)) for name, addr in getaddresses([value]) if "@" in addr]
    except Exception:  # noqa: BLE001
        return []


def _unique(values: Any) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        if value and value not in seen:
            seen[value] = None
    return tuple(seen)


def _is_daemon_address(address: str) -> bool:
    local = address.split("@", 1)[0]
    return bool(_DAEMON_LOCAL.match(local))


def _best_status(record: _DsnRecipient) -> str | None:
    """The remote server's own enhanced code from Diagnostic-Code when it is of the same class.

    Reporting MTAs often write a generic Status (5.0.0) or map the remote answer loosely; the
    code the receiving server gave is the more telling one.
    """
    if record.status and record.diagnostic:
        match = _STATUS_RE.search(record.diagnostic)
        if match and match.group(1) == record.status[0]:
            return f"{match.group(1)}.{match.group(2)}.{match.group(3)}"
    return record.status


def _normal_action(value: str) -> str | None:
    """RFC 3464 Action, tolerating what MTAs really write ("failure", "deliverable", comments)."""
    word = value.strip().lower().split()[0] if value.strip() else ""
    for prefix, action in (("fail", "failed"), ("delay", "delayed"), ("deliver", "delivered"), ("relay", "relayed")):
        if word.startswith(prefix):
            return action
    return word or None


def _is_expiry_status(status: str | None) -> bool:
    return status is not None and status[2:] == "4.7"


def _is_null_path(return_path: str | None) -> bool:
    """Return-Path of a message sent with MAIL FROM:<> (sendmail writes it as <MAILER-DAEMON>)."""
    if return_path is None:
        return False
    return return_path.strip().replace(" ", "").lower() in {"<>", "<mailer-daemon>"}


def _is_attachment(part: Message) -> bool:
    try:
        return (part.get_content_disposition() or "") == "attachment"
    except Exception:  # noqa: BLE001
        return False


def _starts_header_block(lines: list[str], index: int) -> bool:
    """A run of header lines (Received:, From:...) that begins an inline returned original."""
    if len(lines) <= index + 3 or not _HEADER_LINE.match(lines[index]) or not _ORIGINAL_FIRST.match(lines[index]):
        return False
    return all(_HEADER_LINE.match(n) or n[:1] in {" ", "\t"} for n in lines[index + 1 : index + 4])


def _looks_like_headers(text: str) -> bool:
    lines = [line for line in text.replace("\r", "").split("\n")[:6] if line.strip()]
    return len(lines) >= 3 and sum(1 for line in lines if _HEADER_LINE.match(line) or line[:1] in " \t") >= 3


def _parse_header_block(text: str) -> list[tuple[str, str]]:
    try:
        parsed = HeaderParser(policy=compat32).parsestr(text.lstrip("\r\n"))
    except Exception:  # noqa: BLE001
        return []
    return _raw_headers(parsed)


# Diagnostic wording -> short label, most specific first.
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), label)
    for pattern, label in (
        (
            r"\bspam|black ?list|block ?list|\brbl\b|spamhaus|reputation|\bjunk\b|bulk e-?mail|unsolicited",
            "rejected as spam",
        ),
        (r"\bvirus|malware|infected", "rejected: virus"),
        (
            r"mailbox (?:is )?full|quota|insufficient (?:storage|disk)|exceeded storage|storage (?:space|limit)|"
            r"mailbox size|too many messages",
            "mailbox full",
        ),
        (
            r"too (?:large|big)|size (?:limit|exceeds)|exceeds? (?:the )?(?:maximum|size)|message size",
            "message too large",
        ),
        (
            r"user unknown|unknown user|no such (?:user|mailbox|recipient|account|address)|does ?n[o']t exist|"
            r"not exist|unknown (?:recipient|address|mailbox)|recipient (?:address )?rejected|"
            r"invalid (?:recipient|address|mailbox|user)|address (?:rejected|not found|unknown)|"
            r"user (?:not found|doesn't|does not)|mailbox (?:not found|unavailable)|"
            r"account (?:does not exist|not found)|"
            r"not (?:a )?(?:valid|known) (?:user|recipient|mailbox)|recipient not found|no mailbox|"
            r"unrouteable address|unknown local|user not listed|not our customer",
            "user unknown",
        ),
        (
            r"(?:account|mailbox|user|address) (?:is |has been )?"
            r"(?:disabled|suspended|inactive|deactivated|closed|locked)|"
            r"\bdisabled\b|\bsuspended\b|deactivated|no longer (?:in use|active|valid)",
            "mailbox disabled",
        ),
        (
            r"host (?:not found|unknown)|domain (?:not found|does not exist)|unknown (?:host|domain)|\bno mx\b|"
            r"name ?server|nxdomain|dns (?:lookup|error|failure)",
            "host unknown",
        ),
        (
            r"relay(?:ing)? (?:denied|not permitted|access denied)|not permitted to relay|unable to relay",
            "relaying denied",
        ),
        (r"\bloop|too many hops", "mail loop"),
        (r"timed? ?out|connection refused|could not connect|unable to connect|not reachable|network", "network error"),
        (
            r"denied|not authori[sz]ed|policy|blocked|refused|rejected|filter|not accept|security|\bspf\b|dkim|dmarc",
            "rejected by policy",
        ),
    )
)
# RFC 3463 subject.detail -> label, for a bounce whose words say nothing more.
_STATUS_REASONS = {
    "1.0": "user unknown",
    "1.1": "user unknown",
    "1.10": "user unknown",
    "1.2": "host unknown",
    "1.6": "mailbox moved",
    "2.1": "mailbox disabled",
    "2.2": "mailbox full",
    "2.3": "message too large",
    "3.4": "message too large",
    "4.1": "network error",
    "4.4": "network error",
    "4.6": "mail loop",
    "7.1": "rejected by policy",
}


def _bounce_reason(
    status: str | None, diagnostic: str | None, text: str, permanent: bool, delayed: bool, expired: bool
) -> str:
    """A short human label: delay and expiry first, then the diagnostic's words, the status, the text."""
    words = f"{diagnostic or ''}\n{text[:4000]}"
    temporary_words = _TEMPORARY_TEXT.search(words) and not _PERMANENT_TEXT.search(words)
    if delayed or (not permanent and not expired and temporary_words):
        return "delayed"
    if expired or _is_expiry_status(status):
        return "expired"
    for pattern, label in _REASONS:
        if diagnostic and pattern.search(diagnostic):
            return label
    if status and status[2:] in _STATUS_REASONS:
        return _STATUS_REASONS[status[2:]]
    for pattern, label in _REASONS:
        if pattern.search(text[:4000]):
            return label
    return "delivery failed" if permanent else "temporary failure"
