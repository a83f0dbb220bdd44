"""Queueing outbound mail: resolve who sends, compose the exact bytes, commit to the Mail Log.

Everything is checked before anything is stored: a CR/LF in a header, a bad address, a portal
URL placeholder without a portal URL, an inactive employee. A message with no SMTP account to go
through is still composed and logged, as `not_sent` with the reason. Its `queued` step line is written once
the caller commits.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from sqlmodel import Session

from bridge import candidates, crypto, portal
from bridge.accounts import aliases, employees, smtp_accounts
from bridge.config import logs
from bridge.errors import InputError
from bridge.input_checks import check_address, refuse_line_breaks
from bridge.outbound.compose import Draft, display_from, render
from models import Alias, Conversation, DeliveryAttempt, OutboundMessage, SmtpAccount, utcnow
from routing.message_ids import child_thread_index, make_message_id, new_thread_index

log = logging.getLogger(__name__)
STATUSES = ("queued", "sending", "sent", "deferred", "undeliverable", "not_sent")  # of a Mail Log entry


PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


REQUEUE = "replybridge requeue ID, or Requeue in the Mail Log"  # how a message is queued again


def reply_addresses(sender_mode: str, alias: Alias | None, numbered: str) -> tuple[str, str | None]:
    """(From, Reply-To). The numbered address is never dropped: it is the From (mode `from`) or the first
    Reply-To (mode `reply-to`); an alias's own Reply-To (the usual set-up advice is "your email") comes
    after it, so a reply to all reaches both, never the recruiter alone."""
    own = alias.reply_to if alias is not None and alias.reply_to else None
    extra = [own] if own and own.lower() != numbered.lower() else []
    if sender_mode == "reply-to" and alias is not None:
        return alias.from_address, ", ".join([numbered, *extra])
    return numbered, ", ".join([numbered, *extra]) if extra else None


def no_account(session: Session, message: OutboundMessage) -> tuple[str, str]:
    """Why a message has no SMTP account to go through, and the one fix: automated mail (and an employee's
    without an alias) goes only through the database-wide account, a person's through the alias's own."""
    alias = session.get(Alias, message.alias_id) if message.alias_id else None
    add_default = "Add a database-wide account (replybridge smtp add NAME ... --default)"
    if message.automated or alias is None:
        what = "automated mail" if message.automated else "mail from an employee without an alias"
        return (f"no SMTP account: {what} goes through the database-wide account, and there is none",
                f"{add_default}, then queue the message again ({REQUEUE}).")
    return (f"no SMTP account: the alias {alias.description!r} has none and there is no database-wide account",
            f"Give the alias an SMTP account (replybridge alias add ... --smtp NAME) or {add_default[0].lower()}"
            f"{add_default[1:]}, then queue the message again ({REQUEUE}).")


@dataclass(frozen=True)
class Request:
    """One message to send, as the CLI, the web page or the API asks for it."""

    employee_number: int
    to: str
    subject: str
    text: str | None = None
    html: str | None = None
    alias: str | None = None
    to_name: str | None = None
    automated: bool = False
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    values: dict[str, str] = field(default_factory=dict)  # placeholders such as {name} from a CSV row
    purpose: str = "message"  # message | acknowledgement
    inbound_id: int | None = None

    @property
    def auto_submitted(self) -> str | None:
        if self.purpose == "acknowledgement":
            return "auto-replied"
        return "auto-generated" if self.automated else None


def fill_placeholders(body: str, values: dict[str, str], portal_url: str) -> str:
    """Replace `{portal_url}` and the row's `{column}` names; other braces stay as they are."""
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "portal_url":
            if not portal_url:
                raise InputError("the body uses {portal_url} but no portal URL is set: run `replybridge settings "
                                 "set portal_url https://...`; nothing was queued")
            return portal_link(portal_url, match.string[match.end():match.end() + 1])
        return values.get(key, match.group(0))
    return PLACEHOLDER.sub(replace, body)


def portal_link(portal_url: str, following: str) -> str:
    """The portal URL as the text after `{portal_url}` needs it: one slash between it and a path, however the
    URL was typed (the usual advice is to type it with its trailing `/`, bodies are written either way)."""
    base = portal_url.rstrip("/")
    if following == "/":
        return base
    return base + "/" if following and (following.isalnum() or following in "-_~%") else portal_url


def _thread_index(session: Session, conversation: Conversation) -> str:
    """The conversation's Outlook thread: a header block first, then child blocks."""
    if conversation.thread_index is None:
        conversation.thread_index = new_thread_index()
        session.add(conversation)
        return conversation.thread_index
    started = conversation.created_at.timestamp()
    return child_thread_index(conversation.thread_index, started)


def queue(session: Session, req: Request) -> OutboundMessage:
    """Compose and store one message; the caller commits. Raises InputError, changing nothing."""
    refuse_line_breaks(subject=req.subject, to=req.to, to_name=req.to_name, in_reply_to=req.in_reply_to)
    to = check_address(req.to, "recipient")
    if req.text is None and req.html is None:
        raise InputError("a message needs a body (text or HTML)")
    settings = portal.load(session)
    numbered = settings.numbered()
    employee = employees.get_employee(session, req.employee_number)
    if not employee.active:
        raise InputError(f"employee {employee.number} is inactive and cannot send")
    alias: Alias | None = aliases.alias_for(session, employee, req.alias)
    text = fill_placeholders(req.text, req.values, settings.portal_url) if req.text is not None else None
    html = fill_placeholders(req.html, req.values, settings.portal_url) if req.html is not None else None
    subject = fill_placeholders(req.subject, req.values, settings.portal_url)
    refuse_line_breaks(subject=subject)

    number_addr = numbered.make(employee.number)
    display_name = alias.display_name if alias else employee.name
    from_addr, reply_to = reply_addresses(settings.sender_mode, alias, number_addr)

    _candidate, conversation = candidates.link(session, employee, to, req.to_name)
    message_id = make_message_id(crypto.signing_key("message-id"), numbered.primary.domain, conversation.id)
    thread_index = _thread_index(session, conversation)
    now = utcnow()
    raw = render(Draft(from_name=display_name, from_addr=from_addr, to_addr=to, to_name=req.to_name,
                       subject=subject, message_id=message_id, mailer=settings.mailer_name, text=text, html=html,
                       reply_to=reply_to, thread_index=thread_index, auto_submitted=req.auto_submitted,
                       in_reply_to=req.in_reply_to, references=req.references, date=now))
    message = OutboundMessage(
        message_id=message_id, employee_id=employee.id, alias_id=alias.id if alias else None,
        conversation_id=conversation.id, automated=req.auto_submitted is not None,
        purpose=req.purpose, inbound_id=req.inbound_id, from_addr=display_from(display_name, from_addr),
        envelope_from=from_addr, to_addr=to, subject=subject, thread_index=thread_index, raw=raw,
        created_at=now, next_attempt_at=now)
    if account_for(session, message) is None:
        message.status = "not_sent"
        message.last_reply, message.hint = no_account(session, message)
    session.add(message)
    session.flush()
    if message.status == "not_sent":
        session.add(DeliveryAttempt(outbound_id=message.id, number=0, outcome="not_sent", reply=message.last_reply,
                                    hint=message.hint))
    logs.step_on_commit(session, log, "queued", outbound_id=message.id, employee=employee.number,
                        message_id=message_id, purpose=req.purpose, inbound_id=req.inbound_id,
                        status=message.status if message.status != "queued" else None)
    return message


def account_for(session: Session, message: OutboundMessage) -> SmtpAccount | None:
    """The account a message goes through."""
    return account_for_alias(session, message.alias_id, message.automated)


def account_for_alias(session: Session, alias_id: int | None, automated: bool) -> SmtpAccount | None:
    """The alias's own account for a person's mail; automated mail and aliases without one use the default."""
    alias = session.get(Alias, alias_id) if alias_id else None
    if alias is not None and alias.smtp_account_id and not automated:
        return session.get(SmtpAccount, alias.smtp_account_id)
    return smtp_accounts.default_smtp(session)


def requeue(session: Session, ids: list[int]) -> list[OutboundMessage]:
    """Queue `not_sent` and `undeliverable` messages again with fresh attempts."""
    done = []
    for message_id in ids:
        message = session.get(OutboundMessage, message_id)
        if message is None:
            raise InputError(f"no Mail Log entry {message_id}")
        if message.status not in ("not_sent", "undeliverable"):
            raise InputError(f"message {message_id} is {message.status}; only not_sent and undeliverable "
                             "messages can be queued again")
        message.status, message.attempts, message.next_attempt_at = "queued", 0, utcnow()
        message.hint = None
        session.add(message)
        done.append(message)
    return done
