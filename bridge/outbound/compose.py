"""Turning a draft into the exact bytes we send, and refusing header injection before that.

The bytes rendered here are stored with the Mail Log entry and are the ones sent by SMTP and
appended to the Sent folder: nothing is re-rendered later, so what was sent is what is filed.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from html.parser import HTMLParser

from bridge.input_checks import refuse_line_breaks


@dataclass(frozen=True)
class Draft:
    from_name: str
    from_addr: str
    to_addr: str
    subject: str
    message_id: str
    mailer: str
    text: str | None = None
    html: str | None = None
    to_name: str | None = None
    reply_to: str | None = None
    thread_index: str | None = None
    auto_submitted: str | None = None  # RFC 3834: auto-generated (automated mail) | auto-replied
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    date: dt.datetime | None = None


class _TextOfHtml(HTMLParser):
    """Readable plain text of an HTML body, for the text/plain alternative."""

    _BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a" and self._href:
            self.parts.append(f" <{self._href}>")
            self._href = None

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def text_of_html(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _transfer_encoding(body: str) -> str:
    """7bit where it fits; else quoted-printable, so no server needs 8BITMIME and no line is too long."""
    fits = body.isascii() and all(len(line) <= 998 for line in body.splitlines())
    return "7bit" if fits else "quoted-printable"


def render(draft: Draft) -> bytes:
    """The message as sent: CRLF line ends, MIME encoded-words for non-ASCII names and subjects."""
    refuse_line_breaks(subject=draft.subject, display_name=draft.from_name, to_name=draft.to_name,
                       reply_to=draft.reply_to, in_reply_to=draft.in_reply_to)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = Address(display_name=draft.from_name, addr_spec=draft.from_addr)
    msg["To"] = Address(display_name=draft.to_name or "", addr_spec=draft.to_addr)
    if draft.reply_to:
        msg["Reply-To"] = draft.reply_to
    msg["Subject"] = draft.subject
    msg["Date"] = format_datetime(draft.date or dt.datetime.now(dt.UTC))
    msg["Message-ID"] = draft.message_id
    if draft.in_reply_to:
        msg["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        msg["References"] = " ".join(draft.references)
    if draft.thread_index:
        msg["Thread-Index"] = draft.thread_index
    msg["X-Mailer"] = draft.mailer
    if draft.auto_submitted:
        msg["Auto-Submitted"] = draft.auto_submitted
        msg["X-Auto-Response-Suppress"] = "All"
    text = draft.text if draft.text is not None else text_of_html(draft.html or "")
    msg.set_content(text, charset="utf-8", cte=_transfer_encoding(text))
    if draft.html is not None:
        msg.add_alternative(draft.html, subtype="html", charset="utf-8", cte=_transfer_encoding(draft.html))
    return msg.as_bytes()


def display_from(name: str, addr: str) -> str:
    """`Name <addr>` as the Mail Log shows it."""
    return formataddr((name, addr)) if name else addr
