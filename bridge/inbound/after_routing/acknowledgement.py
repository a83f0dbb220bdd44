"""The optional acknowledgement letter: one automatic answer to a new candidate's first message.

Off while the `acknowledgement` setting is empty. It goes from the employee's numbered address; with
`acknowledge_unassigned` on, a new sender whose mail landed in Unassigned (an application to careers@)
gets it too, through the database-wide account under that account's own name and address. Never to
automatic mail or bounces, to the null sender, to no-reply or system addresses, to list or bulk mail, to
someone who already is a candidate, to mail your own receiving server marks as failing SPF, DKIM or
DMARC (a forged sender would get it: backscatter), at most once per address per 7 days and HOURLY_LIMIT
in all per hour; its subject is fixed, never the sender's. An acknowledgement must never start a mail
loop or carry spam.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from sqlalchemy import func
from sqlmodel import Session, select

from bridge import crypto, portal
from bridge.accounts import smtp_accounts
from bridge.config import logs
from bridge.inbound.after_routing.context import Routed
from bridge.outbound import queue
from bridge.outbound.compose import Draft, display_from, render
from models import Candidate, Conversation, Employee, InboundMessage, OutboundMessage, utcnow
from routing.message_ids import make_message_id
from routing.router import Headers

log = logging.getLogger(__name__)

WINDOW = dt.timedelta(days=7)
HOURLY_LIMIT = 60  # acknowledgements in all per hour: a flood of new senders is not answered letter for letter
_AUTH_RESULT = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*([a-z]+)", re.IGNORECASE)
_FAILING = {"spf": {"fail", "softfail"}, "dkim": {"fail"}, "dmarc": {"fail"}}
FOR_PROBES = False  # a probe is never answered
_SYSTEM_LOCAL = re.compile(r"^(no-?reply|do-?not-?reply|mailer-daemon|postmaster|bounces?|notifications?)"
                           r"([+._-]|$)", re.IGNORECASE)
_LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post", "precedence")


def failing_authentication(headers: Headers, trusted: tuple[str, ...]) -> str | None:
    """What a trusted receiving server's Authentication-Results (RFC 8601) say failed, or None. Only the
    results of an authserv-id in `trusted` count: anyone can write the header, only your servers add theirs."""
    for value in headers.all("authentication-results"):
        authserv = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        if authserv not in trusted:
            continue
        failed = sorted({f"{method.lower()}={result.lower()}" for method, result in _AUTH_RESULT.findall(value)
                         if result.lower() in _FAILING[method.lower()]})
        if failed:
            return f"{authserv} says {', '.join(failed)}"
    return None


def why_not(session: Session, row: InboundMessage, headers: Headers,
            settings: portal.PortalSettings | None = None) -> str | None:
    """The reason no acknowledgement goes out, or None when one should."""
    unassigned = row.route == "unassigned" and row.rule != "unreadable" and bool(
        settings and settings.acknowledge_unassigned)
    if row.kind != "reply" or row.flagged or not (row.route == "employee" or unassigned):
        return "not a person's reply routed to an employee (or to Unassigned, with acknowledge_unassigned on)"
    if not row.from_addr or row.envelope_from == "":
        return "no sender, or the null sender"
    if _SYSTEM_LOCAL.match(row.from_addr.split("@")[0]):
        return "a no-reply or system address"
    if any(headers.first(name) for name in _LIST_HEADERS):
        return "list or bulk mail"
    failed = failing_authentication(headers, settings.trusted_authserv_ids if settings else ())
    if failed is not None:
        return f"the sender may be forged ({failed})"
    if session.exec(select(Candidate.id).where(Candidate.email == row.from_addr)).first() is not None:
        return "already a candidate"
    recent = session.exec(select(OutboundMessage.id).where(
        OutboundMessage.purpose == "acknowledgement", OutboundMessage.to_addr == row.from_addr,
        OutboundMessage.created_at >= utcnow() - WINDOW)).first()
    if recent is not None:
        return "acknowledged within the last 7 days"
    last_hour = session.exec(select(func.count()).select_from(OutboundMessage).where(
        OutboundMessage.purpose == "acknowledgement", OutboundMessage.created_at >= utcnow() - dt.timedelta(hours=1)
    )).one()
    return f"{HOURLY_LIMIT} acknowledgements went out in the last hour" if last_hour >= HOURLY_LIMIT else None


def run(routed: Routed) -> None:
    maybe_acknowledge(routed.session, routed.row, routed.parsed.headers, routed.settings)


def maybe_acknowledge(session: Session, row: InboundMessage, headers: Headers,
                      settings: portal.PortalSettings) -> OutboundMessage | None:
    text = settings.acknowledgement
    if not text or why_not(session, row, headers, settings) is not None:
        return None
    if row.route == "unassigned":
        return _from_the_account(session, row, settings)
    employee = session.get(Employee, row.employee_id)
    ack = queue.queue(session, queue.Request(
        employee_number=employee.number, to=row.from_addr, subject=settings.acknowledgement_subject, text=text,
        purpose="acknowledgement", inbound_id=row.id,
        in_reply_to=row.message_id, references=(row.message_id,) if row.message_id else ()))
    row.candidate_id, row.conversation_id = ack_links(session, ack)
    return ack


def _from_the_account(session: Session, row: InboundMessage, settings: portal.PortalSettings
                      ) -> OutboundMessage | None:
    """The letter to an Unassigned sender: through the database-wide account, under its own identity (no
    employee's numbered address: nobody has taken the message yet)."""
    account = smtp_accounts.default_smtp(session)
    sender = smtp_accounts.own_address(account) if account is not None else None
    if account is None or sender is None:
        return None  # no account, or one without an address of its own: nothing to send it from
    now = utcnow()
    message_id = make_message_id(crypto.signing_key("message-id"), sender.rsplit("@", 1)[1], None)
    raw = render(Draft(from_name=account.from_name or settings.mailer_name, from_addr=sender, to_addr=row.from_addr,
                       subject=settings.acknowledgement_subject, message_id=message_id, mailer=settings.mailer_name,
                       text=settings.acknowledgement, auto_submitted="auto-replied", in_reply_to=row.message_id,
                       references=(row.message_id,) if row.message_id else (), date=now))
    letter = OutboundMessage(message_id=message_id, automated=True, purpose="acknowledgement", inbound_id=row.id,
                             from_addr=display_from(account.from_name or settings.mailer_name, sender),
                             envelope_from=sender, to_addr=row.from_addr, subject=settings.acknowledgement_subject,
                             raw=raw, created_at=now, next_attempt_at=now)
    session.add(letter)
    session.flush()
    logs.step_on_commit(session, log, "queued", outbound_id=letter.id, message_id=message_id,
                        purpose="acknowledgement", inbound_id=row.id)
    return letter


def ack_links(session: Session, ack: OutboundMessage) -> tuple[int | None, int | None]:
    """The candidate and conversation the acknowledgement created, for the reply it answers."""
    conversation = session.get(Conversation, ack.conversation_id) if ack.conversation_id else None
    return (conversation.candidate_id, conversation.id) if conversation else (None, None)
