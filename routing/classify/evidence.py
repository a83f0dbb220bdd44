"""What one inbound message shows, read once for the bounce and the automatic-mail checks.

Sender, subject, structure and the message's own text, each worked out at most once per message
(the checks ask the same questions), from the bounded view `mime_view.bounded_view` made.
"""

from __future__ import annotations

import json
import re
from email.message import Message
from email.utils import parseaddr
from functools import cached_property
from typing import Any

from routing.classify.dsn import DSN_TYPES, DsnRecipient, records_in
from routing.classify.mime_view import (
    HEADER_LINE,
    Headers,
    bare,
    content_type,
    decoded,
    header,
    own_parts,
    param,
    raw_headers,
    readable_text,
)

_MAX_OWN_CHARS = 16_384

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
_NOREPLY_LOCAL = re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply)(?:[-_.+].*)?$", re.I)
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
_ORIGINAL_FIRST = re.compile(r"(?i)(?:received|return-path|delivered-to|x-[\w-]+|message-id|date|from|to|subject):")


class Evidence:
    """One message's facts; properties compute on first use what several rules read."""

    def __init__(self, view: Message, envelope_from: str | None) -> None:
        self.msg = view
        self.envelope_from = envelope_from
        self.headers = raw_headers(view)
        self.ctype = content_type(view)
        self.report_type = param(view, "report-type") if self.ctype == "multipart/report" else ""
        self.subject = decoded(header(self.headers, "Subject")).strip()
        self.from_name, from_addr = parseaddr(decoded(header(self.headers, "From") or ""))
        self.from_addr = bare(from_addr)
        self.parts = list(own_parts(view))

    # --- sender and subject -------------------------------------------------------------------

    @property
    def null_sender(self) -> bool:
        return is_null_sender(self.headers, self.envelope_from)

    @property
    def daemon_sender(self) -> bool:
        """From (or Return-Path) is a mail system: MAILER-DAEMON, postmaster, "Mail Delivery System"."""
        if is_daemon_address(self.from_addr):
            return True
        if self.from_name and _DAEMON_NAME.search(self.from_name):
            return True
        from_value = header(self.headers, "From")
        if from_value is not None and from_value.strip() and not self.from_addr and "<>" in from_value:
            return True  # From: "Mail Delivery System" <>
        return_path = bare(header(self.headers, "Return-Path") or "")
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
        return header(self.headers, "User-Agent") is not None or header(self.headers, "In-Reply-To") is not None

    @property
    def human_reply(self) -> bool:
        """A person answering or forwarding: Re:/Fwd: subject from someone who is not a mail system."""
        return self.reply_subject and not self.daemon_sender

    # --- structure ------------------------------------------------------------------------------

    @cached_property
    def dsn_parts(self) -> list[Message]:
        return [p for p in self.parts if content_type(p) in DSN_TYPES]

    @cached_property
    def dsn_records(self) -> list[DsnRecipient]:
        return records_in(self.dsn_parts)

    @cached_property
    def ses_notification(self) -> dict[str, Any] | None:
        """An Amazon SES notification (SNS e-mail subscription): JSON in the body."""
        if not (header(self.headers, "x-amz-sns-message-id") or self.from_addr.endswith("@sns.amazonaws.com")):
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

    # --- text ---------------------------------------------------------------------------------

    @cached_property
    def text(self) -> str:
        """The message's own human-readable text (plain parts, else HTML stripped)."""
        return readable_text(self.msg, self.parts)

    @cached_property
    def _own_and_tail(self) -> tuple[str, str]:
        lines = self.text.split("\n")
        cut = len(lines)
        for index, line in enumerate(lines):
            if index > 0 and (_ORIGINAL_MARKER.match(line) or (index > 2 and _starts_header_block(lines, index))):
                cut = index
                break
        own = "\n".join(line for line in lines[:cut] if not line.lstrip().startswith(">"))
        return own[:_MAX_OWN_CHARS], "\n".join(lines[cut:])  # what an MTA says about a failure is short

    @property
    def own_text(self) -> str:
        """The bounce's own words: text before a returned original, without ">" quoted lines."""
        return self._own_and_tail[0]

    @property
    def tail_text(self) -> str:
        """The text after the bounce's own words: the returned original, when inline."""
        return self._own_and_tail[1]


def is_null_sender(headers: Headers, envelope_from: str | None) -> bool:
    """Sent with MAIL FROM:<>, by the envelope or the Return-Path that records it."""
    if envelope_from is not None and envelope_from.strip().strip("<>").strip() == "":
        return True
    return _is_null_path(header(headers, "Return-Path"))


def is_daemon_address(address: str) -> bool:
    """MAILER-DAEMON, postmaster and the like: a mail system's address, never a person's."""
    return bool(_DAEMON_LOCAL.match(address.split("@", 1)[0]))


def _is_null_path(return_path: str | None) -> bool:
    """Return-Path of a message sent with MAIL FROM:<> (sendmail writes it as <MAILER-DAEMON>)."""
    if return_path is None:
        return False
    return return_path.strip().replace(" ", "").lower() in {"<>", "<mailer-daemon>"}


def _starts_header_block(lines: list[str], index: int) -> bool:
    """A run of header lines (Received:, From:...) that begins an inline returned original."""
    if len(lines) <= index + 3 or not HEADER_LINE.match(lines[index]) or not _ORIGINAL_FIRST.match(lines[index]):
        return False
    return all(HEADER_LINE.match(n) or n[:1] in {" ", "\t"} for n in lines[index + 1 : index + 4])
