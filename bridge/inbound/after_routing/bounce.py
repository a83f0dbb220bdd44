"""A bounce marks the original's Mail Log entry undeliverable (with the server's words and a hint).

The original is found by the Message-ID the bounce quotes, else as the newest mail to a failed
recipient within BOUNCE_MATCH_WINDOW. A delay notice changes nothing; a permanent failure, or a server
that gave up (expired), does. The Mail Log change and its `outbound.undeliverable` webhook event commit
with the routing of the bounce."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Session, select

from bridge.inbound.after_routing.context import Routed
from bridge.net.diagnosis import Endpoint, Failure, diagnose
from bridge.ops.webhooks import outbox
from models import InboundMessage, OutboundMessage
from routing.classify import BounceInfo

BOUNCE_MATCH_WINDOW = dt.timedelta(days=30)
FOR_PROBES = True  # a probe is never a bounce: the step passes it by itself


def _bounced_outbound(session: Session, info: BounceInfo, received_at: dt.datetime) -> OutboundMessage | None:
    """The original of a bounce: by its Message-ID, else the newest mail to a failed recipient."""
    if info.original_message_id:
        found = session.exec(select(OutboundMessage).where(OutboundMessage.message_id == info.original_message_id)
                             ).first()
        if found:
            return found
    if info.recipients:
        return session.exec(select(OutboundMessage).where(
            OutboundMessage.to_addr.in_(list(info.recipients)),
            OutboundMessage.created_at >= received_at - BOUNCE_MATCH_WINDOW,
            OutboundMessage.status.in_(("sent", "undeliverable")))
            .order_by(OutboundMessage.created_at.desc())).first()
    return None


def bounce_hint(info: BounceInfo) -> str:
    code = 550 if info.permanent else 450
    failure = Failure("reply", "rcpt", code, f"{info.status or ''} {info.diagnostic or info.reason}".strip())
    return diagnose(failure, Endpoint("the recipient's server", 25, "none")).hint


def apply_bounce(session: Session, row: InboundMessage, info: BounceInfo | None) -> str:
    """Mark the original undeliverable on a permanent bounce, or when the sending server gave up
    (expired: not delivered, though the address may be fine); a delay notice changes nothing."""
    if info is None:
        return "bounce without readable details"
    original = _bounced_outbound(session, info, row.received_at)
    what = f"{info.status or 'no status'} {info.reason}".strip()
    if original is None:
        return f"bounce ({what}); the original message was not found"
    row.outbound_id = original.id
    if not info.permanent and info.reason != "expired":
        return f"delayed delivery notice ({what}) for Mail Log #{original.id}; it stays deliverable"
    was = original.status
    original.status = "undeliverable"
    original.last_reply = f"bounce: {info.status or ''} {info.diagnostic or info.reason}".strip()[:1000]
    original.hint = bounce_hint(info)
    session.add(original)
    if was != "undeliverable":  # webhooks: the ATS hears of it once, in this transaction
        outbox.emit_outbound(session, "outbound.undeliverable", original)
    return f"bounce ({what}) marked Mail Log #{original.id} undeliverable"


def run(routed: Routed) -> None:
    if routed.decision.route == "bounce":
        routed.row.reason = apply_bounce(routed.session, routed.row, routed.classification.bounce)
