"""The webhook outbox: an event becomes one `WebhookDelivery` row per subscribed webhook, written in the
transaction of the change it reports, so an event is never lost and never reported for a change that
rolled back. Inbound and outbound code call `emit` as they would write a log line; `dispatch` POSTs the
rows later."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from secrets import token_urlsafe

from sqlalchemy import select as sa_select
from sqlmodel import Session

from bridge.json_views import inbound_json, log_json
from bridge.memo import remembered
from models import InboundMessage, OutboundMessage, Webhook, WebhookDelivery, utcnow

_HOOKS = Webhook.__table__

EVENTS = ("message.routed", "message.assigned", "outbound.sent", "outbound.undeliverable", "candidate.erased")
TEST_EVENT = "webhook.test"  # `webhook test ID`: one try, to that webhook only
# a candidate was erased (bridge.privacy.erasure): the ATS needs the address to erase on its side, so the
# event carries it, and its stored payload is blanked once delivered (`blanked`)
CANDIDATE_ERASED = "candidate.erased"
BLANKED = "(blanked after delivery)"



_ACTIVE = sa_select(_HOOKS.c.id, _HOOKS.c.events).where(_HOOKS.c.active)


def _subscribers(session: Session, event_type: str) -> list[int]:
    """Active webhooks that want this event: one Core query on a table of a few rows, without
    flushing the caller's pending changes (about 0.1 ms on SQLite: routing pays next to nothing)."""
    rows = session.connection().execute(_ACTIVE).all()
    return [hook_id for hook_id, events in rows if event_type in (json.loads(events or "[]") or EVENTS)]


def new_event_id() -> str:
    return "msg_" + token_urlsafe(18)


def payload_of(event_type: str, data: dict[str, object], at: dt.datetime | None = None) -> str:
    """The body every receiver gets, fixed when the event happens."""
    body = {"type": event_type, "timestamp": (at or utcnow()).isoformat(), "data": data}
    return json.dumps(body, ensure_ascii=False, default=str)


def emit(session: Session, event_type: str, data: dict[str, object] | Callable[[], dict[str, object]]) -> str | None:
    """Queue the event for every active webhook subscribed to it, in the caller's transaction.

    `data` may be a function: it is called only when some webhook wants the event. Returns the
    event id (the `webhook-id` header), or None when no webhook wants it.
    """
    if event_type not in EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r}")
    hook_ids = remembered(session, ("webhooks", event_type), lambda: _subscribers(session, event_type))
    if not hook_ids:
        return None
    now = utcnow()
    payload = payload_of(event_type, data() if callable(data) else data, now)
    event_id = new_event_id()
    session.add_all([WebhookDelivery(webhook_id=hook_id, event_id=event_id, event_type=event_type, payload=payload,
                                     next_attempt_at=now, created_at=now) for hook_id in hook_ids])
    return event_id


def blanked(event_type: str, payload: str) -> str | None:
    """The payload to keep once delivered when the event carried what must not stay (None: keep it as it is):
    a `candidate.erased` event keeps its receipt id and counts, not the address."""
    if event_type != CANDIDATE_ERASED:
        return None
    try:
        body = json.loads(payload)
        body["data"]["address"] = BLANKED
    except (ValueError, TypeError, KeyError):
        body = {"type": event_type, "data": {"address": BLANKED}}
    return json.dumps(body, ensure_ascii=False)


def emit_inbound(session: Session, event_type: str, row: InboundMessage) -> str | None:
    """An event whose data is the inbound message object (as `messages list --json` shows it)."""
    return emit(session, event_type, lambda: inbound_json(session, row))


def emit_outbound(session: Session, event_type: str, message: OutboundMessage | int) -> str | None:
    """An event whose data is the Mail Log object (as `log --json` shows it)."""
    def data() -> dict[str, object]:
        row = message if isinstance(message, OutboundMessage) else session.get(OutboundMessage, message)
        return log_json(session, row)
    return emit(session, event_type, data)
