"""`forward`: the original bytes under Resent-* headers, to the employee's own address, queued as an
outbound message (purpose `forward`) through the database-wide account: the queue's retries, Mail Log and
hints apply, and the hand-off state shown is that entry's status (bridge.json_views.hand_off_state). Its
`queued` step line is written once the routing commits."""

from __future__ import annotations

import datetime as dt
import logging
from email.utils import format_datetime

from sqlmodel import Session

from bridge import crypto, portal
from bridge.config import logs
from bridge.outbound.queue import account_for, no_account
from models import Employee, InboundMessage, OutboundMessage, utcnow
from routing.message_ids import make_message_id

log = logging.getLogger(__name__)


def resent(raw: bytes, resent_from: str, resent_to: str, message_id: str, when: dt.datetime) -> bytes:
    """RFC 5322 resent headers prepended: the original stays byte for byte below them."""
    block = (f"Resent-From: {resent_from}\r\nResent-To: {resent_to}\r\nResent-Date: {format_datetime(when)}\r\n"
             f"Resent-Message-ID: {message_id}\r\n")
    return block.encode("ascii") + raw


def plan(session: Session, row: InboundMessage, employee: Employee, settings: portal.PortalSettings | None) -> None:
    _queue_forward(session, row, employee, settings or portal.load(session))
    row.delivery = "queued"


def _queue_forward(session: Session, row: InboundMessage, employee: Employee,
                   settings: portal.PortalSettings) -> None:
    numbered = settings.numbered()
    sender = numbered.make(employee.number)
    now = utcnow()
    message_id = make_message_id(crypto.signing_key("message-id"), numbered.primary.domain, None)
    forward = OutboundMessage(
        message_id=message_id, employee_id=employee.id, automated=True, purpose="forward", inbound_id=row.id,
        from_addr=sender, envelope_from=sender, to_addr=employee.email,
        subject=(row.subject or "(no subject)")[:500], raw=resent(row.raw, sender, employee.email, message_id, now),
        created_at=now, next_attempt_at=now)
    if account_for(session, forward) is None:
        forward.status = "not_sent"
        forward.last_reply, forward.hint = no_account(session, forward)
    session.add(forward)
    logs.step_on_commit(session, log, "queued", outbound_id=lambda: forward.id, employee=employee.number,
                        message_id=message_id, purpose="forward", inbound_id=row.id,
                        status=forward.status if forward.status != "queued" else None)
