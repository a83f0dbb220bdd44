"""Delivering the webhook outbox (bridge.ops.webhooks.outbox) to the applicant tracking system.

Delivery runs apart from routing and sending (its own scheduler job in `serve`, the end of
`worker --once`): due rows are claimed with conditional UPDATEs, POSTed signed per the Standard
Webhooks spec, and retried with backoff until the receiver answers 2xx. At least once: a crash
between a POST and its record means another POST with the same `webhook-id`, which receivers
dedupe by.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge import leases, portal
from bridge.config import logs
from bridge.crypto import decrypt
from bridge.errors import ConfigError
from bridge.ops.webhooks.outbox import TEST_EVENT, blanked
from bridge.ops.webhooks.targets import refusal
from models import Webhook, WebhookDelivery, utcnow
from models.db import session_scope

if TYPE_CHECKING:
    import httpx  # loads only where webhooks are delivered (the receiver and the pipe never do)


log = logging.getLogger(__name__)


# seconds before each retry: about 23 hours in all, then the delivery is marked failed
BACKOFF_S = (5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)


MAX_ATTEMPTS = len(BACKOFF_S) + 1


TIMEOUT_S = 10.0


BATCH = 50


PARALLEL = 8  # concurrent POSTs: a receiver that does not answer costs one timeout per 8 deliveries


CLAIM_ROUNDS = 3


LEASE = leases.LEASE  # renewed while the POST runs; a claim whose deliverer died is taken again


USER_AGENT = "replybridge-webhooks"


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
    from standardwebhooks import Webhook as Signer  # loads only where webhooks are delivered

    at = at or utcnow()
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Signer(secret).sign(event_id, at, payload),
            "content-type": "application/json", "user-agent": USER_AGENT}


def post(client: httpx.Client, claimed: Claimed, allow_private: bool = False) -> Outcome:
    """One signed POST; any answer but 2xx, and no answer, is a failure with the reason. The receiver's
    answer body is never read: it is kept nowhere (it could be anything the target chose to send)."""
    import httpx  # (likewise)

    why = refusal(urlsplit(claimed.url).hostname or "", allow_private)
    if why is not None:  # the name may point elsewhere now than when the webhook was added
        return Outcome(False, None, f"refused: {why}")

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
            return Outcome(False, response.status_code, what)
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
        if (kept := blanked(claimed.event_type, claimed.payload)) is not None:  # nothing of an erased candidate stays
            values.update(payload=kept)
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
        logs.step(log, "webhook_delivered", event_id=claimed.event_id, event=claimed.event_type,
                  webhook=claimed.webhook_id, attempt=attempts, http_status=outcome.status)
    else:
        logs.step(log, "webhook_failed", event_id=claimed.event_id, event=claimed.event_type,
                  webhook=claimed.webhook_id, attempt=attempts, http_status=outcome.status, error=outcome.error,
                  retried="no" if status == "failed" else "yes")
    return status


def _client(timeout: float) -> httpx.Client:
    import httpx  # (likewise)

    return httpx.Client(timeout=timeout, follow_redirects=False,
                        limits=httpx.Limits(max_connections=PARALLEL * 2))


def _private_allowed(engine: Engine) -> bool:
    with session_scope(engine) as session:
        return portal.load(session).webhook_private_targets


def renew(engine: Engine, ids: list[int]) -> None:
    """Extend the claims on deliveries still in this deliverer's hands."""
    with session_scope(engine) as session:
        session.exec(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids), WebhookDelivery.status == "pending",
                                                   WebhookDelivery.claimed_until.is_not(None))
                     .values(claimed_until=utcnow() + LEASE).execution_options(synchronize_session=False))


def _deliver(engine: Engine, client: httpx.Client, batch: list[Claimed], parallel: int) -> int:
    allow_private = _private_allowed(engine)
    with leases.Keeper(lambda ids: renew(engine, ids), "webhook deliveries", LEASE) as held:
        held.add(claimed.id for claimed in batch)

        def one(claimed: Claimed) -> bool:
            outcome = post(client, claimed, allow_private)
            held.done(claimed.id)
            return record(engine, claimed, outcome) == "delivered"

        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(batch))),
                                thread_name_prefix="rb-webhook") as pool:
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
        _deliver(engine, client, batch, 1)
    with session_scope(engine) as session:
        return session.get(WebhookDelivery, delivery_id)
