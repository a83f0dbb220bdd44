"""The optional acknowledgement letter: one automatic answer to a new candidate's first message.

Off while the `acknowledgement` setting is empty. Never to automatic mail or bounces, to the null
sender, to no-reply or system addresses, to list mail, to someone who already is a candidate, and
at most once per address per 7 days: an acknowledgement must never start a mail loop.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlmodel import Session, select

from bridge import portal
from bridge.inbound.after_routing.context import Routed
from bridge.input_checks import one_line
from bridge.outbound import queue
from models import Candidate, Conversation, Employee, InboundMessage, OutboundMessage, utcnow
from routing.router import Headers

WINDOW = dt.timedelta(days=7)
FOR_PROBES = False  # a probe is never answered
_SYSTEM_LOCAL = re.compile(r"^(no-?reply|do-?not-?reply|mailer-daemon|postmaster|bounces?|notifications?)"
                           r"([+._-]|$)", re.IGNORECASE)
_LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post", "precedence")


def why_not(session: Session, row: InboundMessage, headers: Headers) -> str | None:
    """The reason no acknowledgement goes out, or None when one should."""
    if row.kind != "reply" or row.route != "employee" or row.flagged:
        return "not a person's reply routed to an employee"
    if not row.from_addr or row.envelope_from == "":
        return "no sender, or the null sender"
    if _SYSTEM_LOCAL.match(row.from_addr.split("@")[0]):
        return "a no-reply or system address"
    if any(headers.first(name) for name in _LIST_HEADERS):
        return "list or bulk mail"
    if session.exec(select(Candidate.id).where(Candidate.email == row.from_addr)).first() is not None:
        return "already a candidate"
    recent = session.exec(select(OutboundMessage.id).where(
        OutboundMessage.purpose == "acknowledgement", OutboundMessage.to_addr == row.from_addr,
        OutboundMessage.created_at >= utcnow() - WINDOW)).first()
    return "acknowledged within the last 7 days" if recent is not None else None


def run(routed: Routed) -> None:
    maybe_acknowledge(routed.session, routed.row, routed.parsed.headers, routed.settings)


def maybe_acknowledge(session: Session, row: InboundMessage, headers: Headers,
                      settings: portal.PortalSettings) -> OutboundMessage | None:
    text = settings.acknowledgement
    if not text or why_not(session, row, headers) is not None:
        return None
    employee = session.get(Employee, row.employee_id)
    subject = one_line(row.subject) or ""
    ack = queue.queue(session, queue.Request(
        employee_number=employee.number, to=row.from_addr, subject=subject if subject.lower().startswith("re:")
        else f"Re: {subject}".strip(), text=text, purpose="acknowledgement", inbound_id=row.id,
        in_reply_to=row.message_id, references=(row.message_id,) if row.message_id else ()))
    row.candidate_id, row.conversation_id = ack_links(session, ack)
    return ack


def ack_links(session: Session, ack: OutboundMessage) -> tuple[int | None, int | None]:
    """The candidate and conversation the acknowledgement created, for the reply it answers."""
    conversation = session.get(Conversation, ack.conversation_id) if ack.conversation_id else None
    return (conversation.candidate_id, conversation.id) if conversation else (None, None)
