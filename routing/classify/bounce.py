"""Is this message a bounce, and what does it say? Layers, strongest first.

1. RFC 3464 delivery status notifications, read per recipient (`dsn`).
2. flufl.bounce for the non-standard bounces of many MTAs, believed only when the headers look
   like a bounce (`flufl_detectors`).
3. Our own heuristics for what both miss: a daemon or null sender, or a bounce subject, together
   with delivery-failure wording or a returned original message; Amazon SES notifications (JSON).

A person talking about a bounce is no bounce: Re:/Fwd: subjects from a non-daemon sender, an
attached message/rfc822 (never read as this message's own parts), and a bounce-looking subject
from a mail program (User-Agent, In-Reply-To) do not count as bounce evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from routing.addresses import addresses_of
from routing.classify.bounce_reason import reason_label
from routing.classify.dsn import (
    SUCCESS_ACTIONS,
    DsnPick,
    DsnRecipient,
    is_expired_text,
    pick,
    status_field,
    text_permanence,
    text_status,
    without_diagnostic_type,
)
from routing.classify.evidence import Evidence, is_daemon_address
from routing.classify.flufl_detectors import credible, run_detectors
from routing.classify.mime_view import ADDR, bare, content_type, decoded, header, sane_address, unique
from routing.classify.returned import ReturnedOriginal, normalize_msgid


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


Bounce = tuple[str, BounceInfo]  # the signal that decided, and what the bounce says

_MAX_DIAGNOSTIC = 300

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
_QUOTED_HEADER = re.compile(r"(?im)^(?:message-id|received|from|to|subject):")
# How old mail servers' plain-text notices open, when they carry no DSN (and often a "RE:" subject): no
# person starts a reply this way. English and French.
_NOTICE_OPENING = re.compile(
    r"\A\s*(?:(?:your|the) (?:message|e-?mail|mail)\b[^\n]{0,80}?\b(?:could not|couldn'?t|can ?not|was not|"
    r"wasn'?t|did not|has not been|have not been) (?:be )?(?:delivered|reach(?:ed)?|sent)|"
    r"(?:votre|le) (?:message|courriel|e-?mail)\b[^\n]{0,80}?\bn'a pas (?:pu )?(?:\S{1,2}tre )?"
    r"(?:remis|d\S{1,2}livr|distribu|transmis|envoy)|"  # accents may arrive mis-decoded
    r"(?:delivery|d[ée]livrance|remise) (?:to the following recipients? )?(?:has )?(?:failed|[ée]chou[ée]e?))",
    re.I,
)
# A mailing-list manager's alert that a message went round in a loop, returning it.
_LOOP_TEXT = re.compile(r"mail(?:ing)? loop|loop(?:ing)? (?:detected|message)|too many hops|hop count", re.I)
# ... or its refusal of a post from someone who is not a member (the post did not reach the list).
_LIST_REFUSAL_TEXT = re.compile(r"\A\s*(?:you(?:r address)?\b[^\n]{0,60}\bnot (?:a )?(?:member|subscribed)|"
                                r"only (?:list )?members may post|posting (?:is )?restricted to members)", re.I)
_LIST_MANAGER_LOCAL = re.compile(r"^(?:listserv|majordomo|mailman|sympa|ecartis|lyris|listproc|smartlist)(?:[-_.].*)?$"
                                 r"|(?:-owner|-request|-bounces|-admin)$|^owner-", re.I)
_LIST_SERVER_HEADERS = ("X-MLServer", "X-ML-Server", "Mailing-List", "X-Mailman-Version", "X-Ecartis-Version")
_DIAG_LINE = re.compile(
    r"\b[45]\d\d\b[ -]|[245]\.\d{1,3}\.\d{1,3}|unknown|does not exist|not found|no such|full|quota|rejected|"
    r"denied|refused|blocked|timed? ?out|expired|invalid|unavailable|failed|disabled|not permitted|spam|"
    r"too large|exceeds|retry|delayed|not accept|blacklist|reputation|policy|relay",
    re.I,
)
_DIAG_CODE = re.compile(r"\b[45]\d\d\b[ -]|[45]\.\d{1,3}\.\d{1,3}")
_DIAG_NOISE = re.compile(
    r"^(?:received|from|to|subject|date|message-id|return-path|content-|mime-version|x-[\w-]+|"
    r"reporting-mta|arrival-date|final-recipient|original-recipient|action|status|remote-mta)\s*:",
    re.I,
)
# Where a plain-text bounce names the failed recipient, most reliable first.
_RECIPIENT_PATTERNS = tuple(
    re.compile(pattern)
    for pattern in (
        r"(?im)^\s*(?:final|original)-recipient:\s*(?:rfc822|utf-8)?;?\s*<?(" + ADDR + r")",
        r"(?im)rcpt to:\s*<?(" + ADDR + r")",
        r"(?im)^\s*<(" + ADDR + r")>\s*:",
        r"(?im)^\s*(?:--?|\*|\u2022)?\s*<?(" + ADDR + r")>?\s*(?::|\.\.\.|\[|\(|\son\s|$)",
        r"(?i)(?:deliver(?:ed|y)?|sent|message|mail)\s+to\s+<?(" + ADDR + r")",
        r"(?i)(?:recipient|address(?:ee)?|user|mailbox)[^\n<@]{0,40}<(" + ADDR + r")>",
        r"(?i)<?(" + ADDR + r")>?[^\n]{0,60}(?:unknown|does not exist|not found|rejected|failed|full|quota)",
    )
)


def detect_bounce(ev: Evidence) -> Bounce | None:
    """The bounce the message is, with the signal that decided, or None when it is no bounce."""
    original = ReturnedOriginal(ev)
    dsn_parts = ev.dsn_parts
    is_report = ev.report_type == "delivery-status"
    # A delivery-status part outside a multipart/report counts unless a person seems to have
    # attached it: a Re:/Fwd: subject, or a sender address with nothing bounce-like about it.
    loose_dsn = dsn_parts and not ev.human_reply
    loose_dsn = loose_dsn and (ev.sender_evidence or ev.subject_evidence or not ev.from_addr)
    if is_report or loose_dsn:
        records = ev.dsn_records
        failed = [r for r in records if r.action == "failed"]
        delayed = [r for r in records if r.action == "delayed"]
        done = [r for r in records if r.action in SUCCESS_ACTIONS]
        if done and not failed and not delayed:
            return None  # a success notice: automatic, decided there
        if records or is_report:
            reason = "multipart/report; report-type=delivery-status"
            if not is_report:
                reason = f"{content_type(dsn_parts[0])} part"
            return reason, _bounce_info(ev, original, failed, delayed)
    ses = ev.ses_notification
    if ses is not None and ses.get("notificationType") == "Bounce":
        return "Amazon SES bounce notification", _ses_bounce(ses)
    failed_header = bool(header(ev.headers, "X-Failed-Recipients"))  # only Exim's bounces carry it
    structural = failed_header or bool(original.parts)
    returned = structural or bool(_QUOTED_HEADER.search(ev.tail_text))
    if ev.human_reply:  # "RE:" from a non-system sender: a bounce only when its text opens like one
        if (_NOTICE_OPENING.match(ev.own_text) and (structural or _DIAG_CODE.search(ev.own_text))
                and header(ev.headers, "User-Agent") is None):  # a person's quoted "From:" lines are not enough
            return "delivery-failure notice (no DSN) under a reply subject", _bounce_info(ev, original)
        return None
    list_manager = bool(_LIST_MANAGER_LOCAL.search(ev.from_addr.split("@", 1)[0]))
    if list_manager and returned and _LOOP_TEXT.search(ev.own_text):
        return "mailing-list manager's mail-loop alert returning the original", _bounce_info(ev, original)
    if (list_manager or any(header(ev.headers, name) for name in _LIST_SERVER_HEADERS)) and \
            _LIST_REFUSAL_TEXT.match(ev.own_text):
        return "mailing list refused the post (sender not a member)", _bounce_info(ev, original)
    sender, subject = ev.sender_evidence, ev.subject_evidence and not ev.mua_marks
    if not (sender or subject or structural):
        return None  # nothing in the headers or structure looks like a bounce
    failure_words = bool(_FAILURE_TEXT.search(ev.own_text))
    if ev.noreply_sender and structural and failure_words:
        return "no-reply sender with delivery-failure text and returned original", _bounce_info(ev, original)
    if not (sender or subject or failed_header):
        return None  # flufl.bounce reads attached messages too: a forwarded bounce is no bounce
    detector, temporary, permanent = run_detectors(ev.msg)
    if detector and credible(detector, sender, subject, failed_header, failure_words):
        return f"flufl.bounce ({detector})", _bounce_info(ev, original, flufl=(temporary, permanent))
    reason = _heuristic_reason(ev, sender, subject, failed_header, failure_words, structural)
    return None if reason is None else (reason, _bounce_info(ev, original))


def _heuristic_reason(
    ev: Evidence, sender: bool, subject: bool, failed_header: bool, failure_words: bool, structural: bool
) -> str | None:
    """Our own signals, once flufl.bounce has no credible answer."""
    if failed_header:
        return "X-Failed-Recipients header"
    if sender and subject:
        return "mail-system sender and bounce subject"
    if sender and failure_words:
        who = "null sender" if ev.null_sender and not ev.daemon_sender else "mail-system sender"
        return f"{who} with delivery-failure text"
    if subject and failure_words and (structural or bool(_QUOTED_HEADER.search(ev.tail_text))):
        return "bounce subject with delivery-failure text and returned original"
    return None


def _bounce_info(
    ev: Evidence,
    original: ReturnedOriginal,
    failed: list[DsnRecipient] | None = None,
    delayed: list[DsnRecipient] | None = None,
    flufl: tuple[set[str], set[str]] | None = None,
) -> BounceInfo:
    """What the bounce says: DSN per-recipient facts first, then its own words."""
    failed, delayed = failed or [], delayed or []
    own = ev.own_text
    expired_text = is_expired_text(own)
    dsn: DsnPick = pick(failed, delayed, expired_text)
    recipients = dsn.recipients or _heuristic_recipients(ev, original, flufl)
    status = dsn.status
    if status is None:
        status = text_status(own)
    elif status[2:] == "0.0":  # generic; the human-readable part may quote the server's own code
        quoted = text_status(own)
        if quoted and quoted[0] == status[0]:
            status = quoted
    if failed or delayed:
        permanent = dsn.permanent
    else:
        only_temporary = flufl is not None and bool(flufl[0]) and not flufl[1]
        permanent = text_permanence(own + "\n" + ev.subject, status, only_temporary)
    diagnostic = dsn.diagnostic if dsn.diagnostic is not None else _text_diagnostic(own)
    if diagnostic:
        diagnostic = re.sub(r"\s+", " ", diagnostic).strip()[:_MAX_DIAGNOSTIC] or None
    label = reason_label(status, diagnostic, own, permanent, bool(delayed and not failed), expired_text)
    return BounceInfo(
        recipients=recipients,
        original_message_id=original.message_id(),
        status=status,
        diagnostic=diagnostic,
        permanent=permanent,
        reason=label,
    )


def _text_diagnostic(own: str) -> str | None:
    """The line of the bounce's own words that tells most: one with an SMTP or RFC 3463 code."""
    best: str | None = None
    for line in (line.strip() for line in own.split("\n")):
        if not line or len(line) < 6 or _DIAG_NOISE.match(line) or not _DIAG_LINE.search(line):
            continue
        if _DIAG_CODE.search(line):
            return line
        if best is None:
            best = line
    return best


def _heuristic_recipients(
    ev: Evidence, original: ReturnedOriginal, flufl: tuple[set[str], set[str]] | None
) -> tuple[str, ...]:
    """flufl's addresses, else the text's, first without any address that is us or the sender.

    flufl's loose detectors and our patterns also pick up the sender, our own address or a
    Message-ID; anonymized samples, though, sometimes send the bounce to the failed address
    itself, so a second round drops only the IDs.
    """
    for ignore in (original.not_recipients, original.message_id_addresses):
        if flufl is not None:
            perm, temp = flufl[1] - ignore, flufl[0] - ignore
            if perm or temp:
                return tuple(sorted(perm or temp))
        found = _text_recipients(ev, original, ignore)
        if found:
            return found
    return ()


def _text_recipients(ev: Evidence, original: ReturnedOriginal, ignore: set[str]) -> tuple[str, ...]:
    """Failed recipients named in a plain-text bounce, else the returned original's only To."""
    failed_header = decoded(header(ev.headers, "X-Failed-Recipients"))
    if failed_header:  # Exim; may be RFC 2047-encoded for an internationalized address
        tokens = [bare(token) for token in re.split(r"[,\s]+", failed_header) if "@" in token]
        found = unique(token for token in tokens if token not in ignore)
        if found:
            return found
    for pattern in _RECIPIENT_PATTERNS:
        found = unique(
            m.group(1).lower()
            for m in pattern.finditer(ev.own_text)
            if m.group(1).lower() not in ignore and bare(m.group(1)) not in ignore and not is_daemon_address(m.group(1))
        )
        if found:
            return found
    to = original.field("To")
    if to:
        addresses = [a.lower() for _, a in addresses_of(to) if sane_address(a)]
        if len(addresses) == 1:
            return (addresses[0],)
    return ()


def _ses_bounce(data: dict[str, Any]) -> BounceInfo:
    """An Amazon SES bounce notification: its JSON says it all, no text to read."""
    bounce = data.get("bounce") if isinstance(data.get("bounce"), dict) else {}
    items = [r for r in bounce.get("bouncedRecipients", []) if isinstance(r, dict)]
    recipients = unique(bare(str(r.get("emailAddress", ""))) for r in items if r.get("emailAddress"))
    status = status_field(" ".join(str(r.get("status", "")) for r in items))
    diagnostic = next((str(r["diagnosticCode"]) for r in items if r.get("diagnosticCode")), None)
    if diagnostic:
        diagnostic = without_diagnostic_type(diagnostic)[:_MAX_DIAGNOSTIC]
    permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
    mail = data.get("mail") if isinstance(data.get("mail"), dict) else {}
    common = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    message_id = None
    for item in mail.get("headers", []) if isinstance(mail.get("headers"), list) else []:
        if isinstance(item, dict) and str(item.get("name", "")).lower() == "message-id":
            message_id = normalize_msgid(str(item.get("value", "")))
    if message_id is None and common.get("messageId"):
        message_id = normalize_msgid(str(common["messageId"]))
    label = reason_label(status, diagnostic, "", permanent, False, False)
    return BounceInfo(recipients, message_id, status, diagnostic, permanent, label)
