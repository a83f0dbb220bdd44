"""What retention removes, one `Kind` each: the table, the setting that gives its age, which rows are past
their time (never work still in progress), what the tally counts them by, and the references to clear
before they go.

Kept apart from the sweep (retention.py) so the rules read as a list: a new kind of record with content is
one more entry here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, exists, func, not_, or_, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from models import UNSENT_STATUSES, AuditEvent, DeliveryAttempt, InboundMessage, OutboundMessage, WebhookDelivery

Due = Callable[[dt.datetime, dt.datetime], ColumnElement[bool]]  # (cut-off, now) -> which rows are past it


def _nothing(_session: Session, _ids: list[int]) -> None:
    """No references to clear."""


@dataclass(frozen=True)
class Kind:
    name: str  # as the tally names it: inbound | dismissed | outbound | webhook | audit
    setting: str  # the keep_*_days setting giving the age
    table: Any  # the SQLModel table class (its `id` is the key)
    made: Any  # the column saying when a record was made: the tally's day
    outcome: Any  # the column the tally counts by
    due: Due
    before_delete: Callable[[Session, list[int]], None] = _nothing


def _settled() -> ColumnElement[bool]:
    """An inbound message whose routing and hand-off are done: one not yet routed, or still being copied to
    its recruiter's INBOX (`pending`) or forwarded, stays however old. A forward's row keeps `queued` for
    good, as its state is its Mail Log entry's (bridge.json_views.hand_off_state): it is in progress while
    that entry is still to go out."""
    forward_unsent = exists().where(OutboundMessage.inbound_id == InboundMessage.id,
                                    OutboundMessage.purpose == "forward",
                                    OutboundMessage.status.in_(UNSENT_STATUSES))
    return and_(InboundMessage.routed_at.is_not(None), InboundMessage.delivery != "pending",
                or_(InboundMessage.delivery != "queued", not_(forward_unsent)))


def _inbound_due(cutoff: dt.datetime, _now: dt.datetime) -> ColumnElement[bool]:
    return and_(InboundMessage.received_at < cutoff, _settled())


def _dismissed_due(cutoff: dt.datetime, _now: dt.datetime) -> ColumnElement[bool]:
    """Dismissed Unassigned messages, counted from their dismissal (from their arrival where that time is
    unknown: dismissed before it was recorded)."""
    dismissed_at = func.coalesce(InboundMessage.triaged_at, InboundMessage.received_at)
    return and_(InboundMessage.route == "unassigned", InboundMessage.triage == "dismissed", dismissed_at < cutoff,
                _settled())


def _outbound_due(cutoff: dt.datetime, _now: dt.datetime) -> ColumnElement[bool]:
    """Mail Log entries done with: sent or given up, their Sent-folder copy filed or given up."""
    return and_(OutboundMessage.created_at < cutoff, OutboundMessage.status.not_in(UNSENT_STATUSES),
                OutboundMessage.sent_folder != "pending")


def _webhook_due(cutoff: dt.datetime, now: dt.datetime) -> ColumnElement[bool]:
    """Webhook events of any status; one a dispatcher is posting right now (a live lease) goes next time."""
    return and_(WebhookDelivery.created_at < cutoff,
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now))


def _audit_due(cutoff: dt.datetime, _now: dt.datetime) -> ColumnElement[bool]:
    return AuditEvent.at < cutoff


def _forget_inbound(session: Session, ids: list[int]) -> None:
    """A Mail Log entry made from a removed message (its forward, its acknowledgement) stops naming it."""
    session.exec(update(OutboundMessage).where(OutboundMessage.inbound_id.in_(ids))  # type: ignore[call-overload]
                 .values(inbound_id=None).execution_options(synchronize_session=False))


def _forget_outbound(session: Session, ids: list[int]) -> None:
    """A removed Mail Log entry takes its attempts along; a bounce of it stops naming it."""
    session.exec(delete(DeliveryAttempt).where(DeliveryAttempt.outbound_id.in_(ids))  # type: ignore[call-overload]
                 .execution_options(synchronize_session=False))
    session.exec(update(InboundMessage)  # type: ignore[call-overload]
                 .where(InboundMessage.outbound_id.in_(ids))
                 .values(outbound_id=None).execution_options(synchronize_session=False))


# in the order they run: dismissed messages before the rest of the inbox, whose age usually exceeds theirs
KINDS: tuple[Kind, ...] = (
    Kind("dismissed", "keep_dismissed_days", InboundMessage, InboundMessage.received_at, InboundMessage.route,
         _dismissed_due, _forget_inbound),
    Kind("inbound", "keep_inbound_days", InboundMessage, InboundMessage.received_at, InboundMessage.route,
         _inbound_due, _forget_inbound),
    Kind("outbound", "keep_mail_log_days", OutboundMessage, OutboundMessage.created_at, OutboundMessage.status,
         _outbound_due, _forget_outbound),
    Kind("webhook", "keep_inbound_days", WebhookDelivery, WebhookDelivery.created_at, WebhookDelivery.status,
         _webhook_due),
    Kind("audit", "keep_audit_days", AuditEvent, AuditEvent.at, AuditEvent.action, _audit_due),
)
