"""RFC 3464 delivery status: per-recipient fields, which status counts, and whether a failure is final.

A delivery-status part is read by our own parser, per recipient, tolerating what MTAs really
write. The RFC 3463 status codes, and the wording of delay and expiry, decide whether a bounce
makes an address bad: a delay, a temporary (4.x.x / 4xx) cause or expiry after retries does not
(the next message may well go through), a 5.x.x, a 5xx reply or "permanent error" does.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message

from routing.classify.mime_view import LOOSE_ADDR_RE, bare, decoded, normalize_newlines, raw_headers, text_of, unique

DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
SUCCESS_ACTIONS = frozenset({"delivered", "relayed", "expanded"})

_STATUS_RE = re.compile(r"(?<![\w.#])#?([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)(?![\w-])")  # in free text
_DSN_STATUS_RE = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")  # in a Status field
_DIAGNOSTIC_TYPE = re.compile(r"^\s*[\w-]+\s*;\s*")  # "smtp; " before a Diagnostic-Code
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")

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


@dataclass
class DsnRecipient:
    """One recipient's fields of a delivery-status part."""

    address: str | None
    action: str | None
    status: str | None
    diagnostic: str | None


@dataclass(frozen=True)
class DsnPick:
    """What the per-recipient fields of a bounce say, taken from the records that matter most."""

    recipients: tuple[str, ...]
    status: str | None
    diagnostic: str | None
    permanent: bool  # some failure is final for its address


# --------------------------------------------------------------------------------------------
# reading delivery-status parts


def records_in(parts: Iterable[Message]) -> list[DsnRecipient]:
    """Every recipient record of the delivery-status parts; a part that will not parse adds none."""
    records: list[DsnRecipient] = []
    for part in parts:
        with contextlib.suppress(Exception):
            records.extend(parse_dsn(_dsn_text(part)))
    return records


def _dsn_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser made one Message per block of fields
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                blocks.append("\n".join(f"{k}: {v}" for k, v in raw_headers(block)))
                body = block.get_payload()
                if isinstance(body, str) and body.strip():
                    blocks.append(body)
        return "\n\n".join(blocks)
    return text_of(part)


def parse_dsn(text: str) -> list[DsnRecipient]:
    """Per-recipient fields of a message/delivery-status body (blocks split by blank lines)."""
    records: list[DsnRecipient] = []
    fields: dict[str, str] = {}

    def flush() -> None:
        if not fields:
            return
        if {"final-recipient", "original-recipient", "x-actual-recipient", "action", "status"} & fields.keys():
            address = None
            for key in ("original-recipient", "final-recipient", "x-actual-recipient"):
                raw = fields.get(key, "")
                raw = raw.split(";", 1)[1] if ";" in raw else raw
                match = LOOSE_ADDR_RE.search(decoded(raw) if "=?" in raw else raw)
                if match:
                    address = bare(match.group(0))
                    break
            action = _normal_action(fields.get("action", ""))
            status = status_field(fields.get("status", ""))
            diagnostic = fields.get("diagnostic-code") or None
            if diagnostic:
                diagnostic = without_diagnostic_type(diagnostic)
            if action is None and status:
                action = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[0])
            records.append(DsnRecipient(address, action, status, diagnostic))
        fields.clear()

    for line in _unfold(text):
        if not line.strip():
            flush()
            continue
        name, sep, value = line.partition(":")
        if sep and _FIELD_NAME.fullmatch(name.strip()):
            key = name.strip().lower()
            if key in fields and key in {"final-recipient", "original-recipient", "action"}:
                flush()  # a new recipient without the blank line between
            fields.setdefault(key, value.strip())
    flush()
    return records


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for line in normalize_newlines(text).split("\n"):
        if line[:1] in {" ", "\t"} and lines and lines[-1].strip():
            lines[-1] = lines[-1].rstrip() + " " + line.strip()
        else:
            lines.append(line)
    return lines


def _normal_action(value: str) -> str | None:
    """RFC 3464 Action, tolerating what MTAs really write ("failure", "deliverable", comments)."""
    word = value.strip().lower().split()[0] if value.strip() else ""
    for prefix, action in (("fail", "failed"), ("delay", "delayed"), ("deliver", "delivered"), ("relay", "relayed")):
        if word.startswith(prefix):
            return action
    return word or None


def status_field(value: str) -> str | None:
    """The RFC 3463 code in a Status field (or a list of them), e.g. "5.1.1"."""
    match = _DSN_STATUS_RE.search(value)
    return match.group(0) if match else None


def without_diagnostic_type(diagnostic: str) -> str:
    """A Diagnostic-Code without its "smtp;" type."""
    return _DIAGNOSTIC_TYPE.sub("", diagnostic).strip()


# --------------------------------------------------------------------------------------------
# status codes, final or not


def text_status(text: str) -> str | None:
    """The first failure or delay code (4.x.x, 5.x.x) written in free text."""
    for match in _STATUS_RE.finditer(text):
        if match.group(1) in "45":
            return _code(match)
    return None


def _code(match: re.Match[str]) -> str:
    return f"{match.group(1)}.{match.group(2)}.{match.group(3)}"


def _best_status(record: DsnRecipient) -> str | None:
    """The remote server's own enhanced code from Diagnostic-Code when it is of the same class.

    Reporting MTAs often write a generic Status (5.0.0) or map the remote answer loosely; the
    code the receiving server gave is the more telling one.
    """
    if record.status and record.diagnostic:
        match = _STATUS_RE.search(record.diagnostic)
        if match and match.group(1) == record.status[0]:
            return _code(match)
    return record.status


def is_expiry_status(status: str | None) -> bool:
    """X.4.7: the delivery time expired (the MTA gave up after retries)."""
    return status is not None and status[2:] == "4.7"


def is_expired_text(text: str) -> bool:
    """Wording of a delivery given up after the retry period."""
    return bool(_EXPIRED_TEXT.search(text))


def sounds_temporary(text: str) -> bool:
    """Wording of a delay or temporary failure, with nothing saying it is permanent."""
    return bool(_TEMPORARY_TEXT.search(text)) and not _PERMANENT_TEXT.search(text)


def pick(failed: list[DsnRecipient], delayed: list[DsnRecipient], expired_text: bool) -> DsnPick:
    """Recipients, status and diagnostic of the final failures, else of all failures, else of delays.

    A failure after the retry period (X.4.7, "retry timeout exceeded", or a generic status in a
    bounce that speaks of expiry) is not final for the address: the next message may go through.
    """
    final = [
        r
        for r in failed
        if not (r.status or "").startswith("4")
        and not is_expiry_status(r.status)
        and not _EXPIRED_TEXT.search(r.diagnostic or "")
        and not (expired_text and (r.status is None or r.status[2:] in {"0.0", "4.0"}))
    ]
    chosen = final or failed or delayed
    status = next((_best_status(r) for r in chosen if r.status and r.status[0] in "45"), None)
    if status is None:
        status = next((_best_status(r) for r in chosen if r.status), None)
    return DsnPick(
        recipients=unique(r.address for r in chosen if r.address),
        status=status,
        diagnostic=next((r.diagnostic for r in chosen if r.diagnostic), None),
        permanent=bool(final),
    )


def text_permanence(text: str, status: str | None, only_temporary_addresses: bool) -> bool:
    """Final or not, for a bounce without DSN actions, from its own words and status.

    Not final: expiry after retries, a warning about delay, a 4.x.x status or only 4xx SMTP
    replies (the cause was temporary even when the MTA then gave up). Final: 5.x.x, 5xx, or
    "permanent error" wording. `only_temporary_addresses`: flufl.bounce found only delays.
    """
    if _EXPIRED_TEXT.search(text) or is_expiry_status(status) or _DELAY_STRONG.search(text):
        return False
    if status:
        return status.startswith("5")
    codes = {m.group(1)[0] for m in _REPLY_CODE_RE.finditer(text)}
    if "5" in codes:
        return True
    if "4" in codes:
        return False
    if _PERMANENT_TEXT.search(text):
        return True
    if only_temporary_addresses:
        return False
    return not _TEMPORARY_TEXT.search(text)
