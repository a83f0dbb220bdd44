"""Webhook subscriptions (`webhook add/list/remove`, the URL and secret checks) and the delivery log
(`webhook deliveries/retry/test`): what an admin sets and reads. Secrets are stored encrypted."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from secrets import token_bytes
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlmodel import Session, select

from bridge import audit, portal
from bridge.crypto import encrypt
from bridge.errors import InputError, NotFound
from bridge.ops.webhooks.outbox import EVENTS, TEST_EVENT, new_event_id, payload_of
from bridge.ops.webhooks.targets import refusal
from models import Webhook, WebhookDelivery, utcnow

STATUSES = ("pending", "delivered", "failed")


SECRET_PREFIX = "whsec_"


SECRET_BYTES = (24, 64)  # the Standard Webhooks spec's range for the key's length


MAKE_SECRET = ("replybridge webhook new-secret (or: python3 -c \"import base64, secrets; "
               "print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\")")


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form: whsec_ + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(32)).decode()


def check_secret(value: str) -> str:
    """The secret as the standardwebhooks package reads it; the error never repeats the value."""
    value = value.strip()
    shape = (f"a webhook secret is {SECRET_PREFIX}<base64 of {SECRET_BYTES[0]} to {SECRET_BYTES[1]} random bytes> "
             f"(the Standard Webhooks form); make one with: {MAKE_SECRET}")
    if not value.startswith(SECRET_PREFIX):
        raise InputError(f"the secret does not start with {SECRET_PREFIX}: {shape}")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"the secret after {SECRET_PREFIX} is not base64: {shape}") from None
    if not SECRET_BYTES[0] <= len(key) <= SECRET_BYTES[1]:
        raise InputError(f"the secret holds {len(key)} bytes: {shape}")
    return value


def check_url(url: str, allow_private: bool = False) -> str:
    """An http(s) URL with a host the bridge may post to (bridge.ops.webhooks.targets); credentials in it are
    refused (the signature authenticates us)."""
    url = url.strip()
    example = "e.g. https://ats.example.com/hooks/replybridge"
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InputError(f"the webhook URL must be one http:// or https:// URL without spaces, {example}")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        raise InputError(f"the webhook URL {url!r} has an invalid port, {example}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InputError(f"the webhook URL {url!r} must be http:// or https:// with a host, {example}")
    if parts.username or parts.password:
        raise InputError("the webhook URL must not hold a user name or password: each request is signed "
                         "with the webhook's secret, which the receiver checks")
    why = refusal(parts.hostname, allow_private)
    if why is not None:
        raise InputError(f"the webhook URL {url!r} is refused: {why}")
    return url


def check_events(events: Iterable[str]) -> list[str]:
    """Known event types, each once, in the documented order; an empty list means every event."""
    wanted = list(events)
    for event in wanted:
        if event not in EVENTS:
            raise InputError(f"unknown event {event!r}; the events are {', '.join(EVENTS)}")
    return [event for event in EVENTS if event in wanted]


def add(session: Session, url: str, secret: str, events: Iterable[str] = ()) -> Webhook:
    """A new active webhook; the secret is stored encrypted."""
    allow_private = portal.load(session).webhook_private_targets
    hook = Webhook(url=check_url(url, allow_private), secret=encrypt(check_secret(secret)),
                   events=json.dumps(check_events(events)))
    session.add(hook)
    session.flush()
    audit.record(session, "webhook", f"webhook {hook.id}", "added")
    return hook


def get(session: Session, webhook_id: int) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound(f"no webhook {webhook_id} (see replybridge webhook list)")
    return hook


def remove(session: Session, webhook_id: int) -> int:
    """Delete the webhook with its deliveries (pending ones are not sent); returns how many went with it."""
    hook = get(session, webhook_id)
    gone = session.exec(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)).rowcount
    session.delete(hook)
    audit.record(session, "webhook", f"webhook {webhook_id}", "removed")
    return gone


def list_all(session: Session) -> list[Webhook]:
    return list(session.exec(select(Webhook).order_by(Webhook.id)).all())


def events_of(hook: Webhook) -> list[str]:
    return json.loads(hook.events or "[]")


def webhook_json(hook: Webhook) -> dict[str, object]:
    """A webhook as `webhook list --json` shows it: never its secret."""
    return {"id": hook.id, "url": hook.url, "events": events_of(hook) or list(EVENTS),
            "all_events": not events_of(hook), "active": hook.active, "created_at": hook.created_at.isoformat()}


def queue_test(session: Session, webhook_id: int) -> WebhookDelivery:
    """A `webhook.test` event for one webhook, whatever it subscribes to."""
    hook = get(session, webhook_id)
    now = utcnow()
    row = WebhookDelivery(webhook_id=hook.id, event_id=new_event_id(), event_type=TEST_EVENT, next_attempt_at=now,
                          created_at=now, payload=payload_of(TEST_EVENT, {"webhook_id": hook.id}, now))
    session.add(row)
    session.flush()
    return row


def deliveries(session: Session, webhook_id: int | None = None, status: str | None = None,
               limit: int = 50) -> list[WebhookDelivery]:
    """Newest first."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if webhook_id is not None:
        query = query.where(WebhookDelivery.webhook_id == webhook_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list(session.exec(query).all())


def delivery_json(d: WebhookDelivery) -> dict[str, object]:
    return {"id": d.id, "webhook": d.webhook_id, "event_type": d.event_type, "event_id": d.event_id,
            "status": d.status, "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error,
            "created_at": d.created_at.isoformat(),
            "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            "next_attempt_at": d.next_attempt_at.isoformat() if d.status == "pending" else None}


def retry(session: Session, ids: Iterable[int]) -> list[WebhookDelivery]:
    """Make pending or failed deliveries due now (same webhook-id; the attempt count starts again)."""
    rows = []
    for delivery_id in ids:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        if row.status == "delivered":
            raise InputError(f"webhook delivery {delivery_id} was delivered already")
        row.status, row.attempts, row.next_attempt_at, row.claimed_until = "pending", 0, utcnow(), None
        session.add(row)
        rows.append(row)
    return rows
