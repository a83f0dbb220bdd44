"""Signed webhooks for the applicant tracking system: subscriptions, an outbox of events, delivery.

An event becomes one `WebhookDelivery` row per subscribed webhook, written in the transaction of
the change it reports: an event is never lost, and never reported for a change that rolled back.
Delivery runs apart from routing and sending (its own scheduler job in `serve`, the end of
`worker --once`): due rows are claimed with conditional UPDATEs, POSTed signed per the Standard
Webhooks spec, and retried with backoff until the receiver answers 2xx. At least once: a crash
between a POST and its record means another POST with the same `webhook-id`, which receivers
dedupe by.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from secrets import token_bytes, token_urlsafe
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import and_, delete, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge.crypto import decrypt, encrypt
from bridge.errors import ConfigError, InputError, NotFound
from models import InboundMessage, OutboundMessage, Webhook, WebhookDelivery, utcnow
from models.db import session_scope

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

EVENTS = ("message.routed", "message.assigned", "outbound.sent", "outbound.undeliverable")
TEST_EVENT = "webhook.test"  # `webhook test ID`: one try, to that webhook only
STATUSES = ("pending", "delivered", "failed")
# seconds before each retry: about 23 hours in all, then the delivery is marked failed
BACKOFF_S = (5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
MAX_ATTEMPTS = len(BACKOFF_S) + 1
TIMEOUT_S = 10.0
BATCH = 50
PARALLEL = 8  # concurrent POSTs: a receiver that does not answer costs one timeout per 8 deliveries
CLAIM_ROUNDS = 3
LEASE = dt.timedelta(minutes=5)  # longer than a batch takes; a claim whose deliverer died is taken again
USER_AGENT = "replybridge-webhooks"

SECRET_PREFIX = "whsec_"
SECRET_BYTES = (24, 64)  # the Standard Webhooks spec's range for the key's length
MAKE_SECRET = ("replybridge webhook new-secret (or: python3 -c \"import base64, secrets; "
               "print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\")")


# --- subscriptions --------------------------------------------------------------------------------

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


def check_url(url: str) -> str:
    """An http(s) URL with a host; credentials in it are refused (the signature authenticates us)."""
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
    hook = Webhook(url=check_url(url), secret=encrypt(check_secret(secret)), events=json.dumps(check_events(events)))
    session.add(hook)
    session.flush()
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
    return gone


def list_all(session: Session) -> list[Webhook]:
    return list(session.exec(select(Webhook).order_by(Webhook.id)).all())


def events_of(hook: Webhook) -> list[str]:
    return json.loads(hook.events or "[]")


def webhook_json(hook: Webhook) -> dict[str, object]:
    """A webhook as `webhook list --json` shows it: never its secret."""
    return {"id": hook.id, "url": hook.url, "events": events_of(hook) or list(EVENTS),
            "all_events": not events_of(hook), "active": hook.active, "created_at": hook.created_at.isoformat()}


# --- emitting: the outbox -------------------------------------------------------------------------

_HOOKS = Webhook.__table__
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
    hook_ids = _subscribers(session, event_type)
    if not hook_ids:
        return None
    now = utcnow()
    payload = payload_of(event_type, data() if callable(data) else data, now)
    event_id = new_event_id()
    session.add_all([WebhookDelivery(webhook_id=hook_id, event_id=event_id, event_type=event_type, payload=payload,
                                     next_attempt_at=now, created_at=now) for hook_id in hook_ids])
    return event_id


def emit_inbound(session: Session, event_type: str, row: InboundMessage) -> str | None:
    """An event whose data is the inbound message object (as `messages list --json` shows it)."""
    from bridge.inbound.triage import inbound_json

    return emit(session, event_type, lambda: inbound_json(session, row))


def emit_outbound(session: Session, event_type: str, message: OutboundMessage | int) -> str | None:
    """An event whose data is the Mail Log object (as `log --json` shows it)."""
    from bridge.outbound.queue import log_json

    def data() -> dict[str, object]:
        row = message if isinstance(message, OutboundMessage) else session.get(OutboundMessage, message)
        return log_json(session, row)
    return emit(session, event_type, data)


def queue_test(session: Session, webhook_id: int) -> WebhookDelivery:
    """A `webhook.test` event for one webhook, whatever it subscribes to."""
    hook = get(session, webhook_id)
    now = utcnow()
    row = WebhookDelivery(webhook_id=hook.id, event_id=new_event_id(), event_type=TEST_EVENT, next_attempt_at=now,
                          created_at=now, payload=payload_of(TEST_EVENT, {"webhook_id": hook.id}, now))
    session.add(row)
    session.flush()
    return row


# --- the delivery log -----------------------------------------------------------------------------

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


# --- delivering -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    """One delivery taken by this deliverer, copied out of the claiming transaction."""

    id: int
    webhook_id: int
    url: str
    secret: str  # still encrypted: decrypted only to sign
    event_id: str
    event_type: str
    payload: str
    attempts: int  # made before this one


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status: int | None  # the receiver's HTTP status, None without an answer
    error: str | None


def _due(due_by: dt.datetime, now: dt.datetime):  # noqa: ANN202 - a SQL expression
    unclaimed = or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now)
    return and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= due_by, unclaimed)


def claim(engine: Engine, limit: int = BATCH, due_by: dt.datetime | None = None,
          only: Iterable[int] | None = None) -> list[Claimed]:
    """Take up to `limit` due deliveries of active webhooks, oldest first.

    Each claim is a conditional UPDATE (still due, unclaimed?) checked by its row count, so two
    deliverers racing for a row cannot both win, on SQLite as on PostgreSQL (where SKIP LOCKED
    also lets the second skip to other rows instead of waiting).
    """
    now = utcnow()
    due = _due(min(due_by or now, now), now)
    with session_scope(engine) as session:
        query = (select(WebhookDelivery.id).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                 .where(Webhook.active, due).order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                 .limit(limit).with_for_update(skip_locked=True, of=WebhookDelivery))
        if only is not None:
            query = query.where(WebhookDelivery.id.in_(list(only)))
        taken: list[int] = []
        for _round in range(CLAIM_ROUNDS):  # every row seen was just taken by another deliverer: look again
            seen = session.exec(query).all()
            for delivery_id in seen:
                won = session.exec(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id, due)
                                   .values(claimed_until=now + LEASE).execution_options(synchronize_session=False))
                if won.rowcount == 1:
                    taken.append(delivery_id)
            if taken or not seen:
                break
        if not taken:
            return []
        rows = session.exec(select(WebhookDelivery, Webhook.url, Webhook.secret)
                            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                            .where(WebhookDelivery.id.in_(taken))
                            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)).all()
        return [Claimed(d.id, d.webhook_id, url, secret, d.event_id, d.event_type, d.payload, d.attempts)
                for d, url, secret in rows]


def signed_headers(secret: str, event_id: str, payload: str, at: dt.datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers for one POST (the timestamp is the sending time)."""
    from standardwebhooks import Webhook as Signer

    at = at or utcnow()
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Signer(secret).sign(event_id, at, payload),
            "content-type": "application/json", "user-agent": USER_AGENT}


def _answer_head(response: httpx.Response, limit: int = 200) -> str:
    """The start of the receiver's answer, for last_error (the rest is not read)."""
    taken = b""
    for chunk in response.iter_bytes():
        taken += chunk
        if len(taken) >= limit:
            break
    return " ".join(taken[:limit].decode("utf-8", "replace").split())


def post(client: httpx.Client, claimed: Claimed) -> Outcome:
    """One signed POST; any answer but 2xx, and no answer, is a failure with the reason."""
    import httpx

    try:
        secret = decrypt(claimed.secret)
    except ConfigError as err:
        return Outcome(False, None, f"{err} (add the webhook again with its secret)")
    body = claimed.payload.encode()
    headers = signed_headers(secret.reveal(), claimed.event_id, claimed.payload)
    try:
        with client.stream("POST", claimed.url, content=body, headers=headers) as response:
            if 200 <= response.status_code < 300:
                return Outcome(True, response.status_code, None)
            what = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            if response.is_redirect:
                what += " (redirects are not followed: give the final URL)"
            head = _answer_head(response)
            return Outcome(False, response.status_code, f"{what}: {head}" if head else what)
    except httpx.TimeoutException as err:
        return Outcome(False, None, f"timeout: no answer in time ({type(err).__name__})")
    except httpx.ConnectError as err:
        return Outcome(False, None, f"could not connect: {err}")
    except httpx.HTTPError as err:
        return Outcome(False, None, f"{type(err).__name__}: {err}")


def record(engine: Engine, claimed: Claimed, outcome: Outcome) -> str:
    """Delivered, or retried later by the backoff, or failed when the attempts are spent. Returns the status."""
    now = utcnow()
    attempts = claimed.attempts + 1
    values: dict[str, object] = {"attempts": attempts, "claimed_until": None, "last_status": outcome.status,
                                 "last_error": outcome.error[:1000] if outcome.error else None}
    if outcome.delivered:
        values.update(status="delivered", delivered_at=now)
    elif attempts >= MAX_ATTEMPTS or claimed.event_type == TEST_EVENT:
        values.update(status="failed")
    else:
        values.update(next_attempt_at=now + dt.timedelta(seconds=BACKOFF_S[attempts - 1]))
    with session_scope(engine) as session:  # a row another deliverer finished (an expired lease) stays as it is
        session.exec(update(WebhookDelivery)
                     .where(WebhookDelivery.id == claimed.id, WebhookDelivery.status == "pending")
                     .values(**values).execution_options(synchronize_session=False))
    status = str(values.get("status", "pending"))
    if outcome.delivered:
        log.info("webhook %s: %s %s delivered (HTTP %s)", claimed.webhook_id, claimed.event_type, claimed.event_id,
                 outcome.status)
    else:
        log.warning("webhook %s: %s %s attempt %s %s: %s", claimed.webhook_id, claimed.event_type, claimed.event_id,
                    attempts, "failed for good" if status == "failed" else "will be retried", outcome.error)
    return status


def _client(timeout: float) -> httpx.Client:
    import httpx

    return httpx.Client(timeout=timeout, follow_redirects=False,
                        limits=httpx.Limits(max_connections=PARALLEL * 2))


def _deliver(engine: Engine, client: httpx.Client, batch: list[Claimed], parallel: int) -> int:
    def one(claimed: Claimed) -> bool:
        return record(engine, claimed, post(client, claimed)) == "delivered"

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(batch))), thread_name_prefix="rb-webhook") as pool:
        return sum(pool.map(one, batch))


def deliver_due(engine: Engine, limit: int = BATCH, timeout: float = TIMEOUT_S, parallel: int = PARALLEL) -> int:
    """Deliver every delivery due when the call starts (a retry it schedules waits for a later run).

    Returns how many the receivers accepted.
    """
    started = utcnow()
    delivered = 0
    client: httpx.Client | None = None
    try:
        while True:
            batch = claim(engine, limit, due_by=started)
            if not batch:
                break
            client = client or _client(timeout)
            delivered += _deliver(engine, client, batch, parallel)
    finally:
        if client is not None:
            client.close()
    return delivered


def deliver_now(engine: Engine, delivery_id: int, timeout: float = TIMEOUT_S) -> WebhookDelivery | None:
    """Deliver one delivery at once (`webhook test`); None when another deliverer holds it."""
    batch = claim(engine, 1, only=[delivery_id])
    if not batch:
        return None
    with _client(timeout) as client:
        record(engine, batch[0], post(client, batch[0]))
    with session_scope(engine) as session:
        return session.get(WebhookDelivery, delivery_id)
