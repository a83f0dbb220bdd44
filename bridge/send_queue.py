"""Claiming due outbound mail and recording each attempt's result.

A claim is its own committed transaction (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL), so
several workers never take the same message; a claim whose worker died is taken again when its
lease runs out. The alias's rate limit (delay between emails) is held in the database so it holds
across workers and runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge import portal
from bridge.diagnosis import Diagnosis, Failure
from bridge.outbound import NO_ACCOUNT, NO_ACCOUNT_HINT, account_for
from models import Alias, DeliveryAttempt, ImapServer, OutboundMessage, SmtpAccount, utcnow
from models.db import session_scope

MAX_ATTEMPTS = 3
LEASE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Claimed:
    """What the sender needs, copied out of the claiming transaction."""

    id: int
    envelope_from: str
    to_addr: str
    raw: bytes
    account: SmtpAccount | None


@dataclass(frozen=True)
class Waiting:
    """Due mail exists, but every alias it goes through must wait until `until` (rate limit)."""

    until: dt.datetime


def _due(now: dt.datetime):  # noqa: ANN202 - a SQL expression
    waiting = and_(OutboundMessage.status.in_(("queued", "deferred")), OutboundMessage.next_attempt_at <= now)
    stale = and_(OutboundMessage.status == "sending", OutboundMessage.claimed_until < now)
    return or_(waiting, stale)


def claim_next(engine: Engine) -> Claimed | Waiting | None:
    """Claim the oldest due message whose alias may send now.

    Each claim is a conditional UPDATE (still due? alias free?) checked by its row count, so two
    workers racing for one row cannot both win, on SQLite as on PostgreSQL.
    """
    now = utcnow()
    with session_scope(engine) as session:
        candidates = session.exec(
            select(OutboundMessage.id, OutboundMessage.alias_id, Alias.next_send_at, Alias.delay_ms)
            .join(Alias, Alias.id == OutboundMessage.alias_id, isouter=True)
            .where(_due(now)).order_by(OutboundMessage.next_attempt_at, OutboundMessage.id).limit(50)
        ).all()
    earliest: dt.datetime | None = None
    for message_id, alias_id, next_send_at, delay_ms in candidates:
        if next_send_at is not None and next_send_at > now:
            earliest = min(earliest or next_send_at, next_send_at)
            continue
        with session_scope(engine) as session:
            taken = session.exec(update(OutboundMessage)
                                 .where(OutboundMessage.id == message_id, _due(now))
                                 .values(status="sending", claimed_until=now + LEASE))
            if taken.rowcount != 1:
                continue
            if alias_id is not None and delay_ms:
                free = or_(Alias.next_send_at.is_(None), Alias.next_send_at <= now)
                held = session.exec(update(Alias).where(Alias.id == alias_id, free)
                                    .values(next_send_at=now + dt.timedelta(milliseconds=delay_ms)))
                if held.rowcount != 1:  # another worker just sent through this alias
                    session.rollback()
                    continue
            message = session.get(OutboundMessage, message_id)
            account = account_for(session, message)
            if account is not None:
                session.expunge(account)
            return Claimed(message.id, message.envelope_from, message.to_addr, message.raw, account)
    return Waiting(earliest) if earliest else None


def _sent_folder_state(session, message: OutboundMessage, account: SmtpAccount) -> str:  # noqa: ANN001
    alias = session.get(Alias, message.alias_id) if message.alias_id else None
    if alias is None or alias.imap_server_id is None or session.get(ImapServer, alias.imap_server_id) is None:
        return "none"
    return "skipped" if account.provider_files_sent else "pending"


def record_sent(engine: Engine, claimed: Claimed, code: int, text: str) -> None:
    now = utcnow()
    reply = f"{code} {text}".strip()
    with session_scope(engine) as session:
        message = session.get(OutboundMessage, claimed.id)
        message.attempts += 1
        message.status, message.sent_at, message.claimed_until = "sent", now, None
        message.last_code, message.last_reply, message.hint = code, reply, None
        message.smtp_account = claimed.account.name if claimed.account else None
        message.sent_folder = _sent_folder_state(session, message, claimed.account)
        message.sent_folder_next_at = now
        session.add(message)
        session.add(DeliveryAttempt(outbound_id=message.id, number=message.attempts, at=now,
                                    smtp_account=message.smtp_account, outcome="sent", code=code, reply=reply))


def record_failure(engine: Engine, claimed: Claimed, failure: Failure, diagnosis: Diagnosis) -> str:
    """Deferred with backoff while temporary and attempts remain, else undeliverable. Returns the status."""
    now = utcnow()
    with session_scope(engine) as session:
        message = session.get(OutboundMessage, claimed.id)
        delays = portal.load(session).retry_delays
        message.attempts += 1
        if diagnosis.temporary and message.attempts < MAX_ATTEMPTS:
            message.status = "deferred"
            message.next_attempt_at = now + dt.timedelta(seconds=delays[message.attempts - 1])
        else:
            message.status = "undeliverable"
        hint = diagnosis.hint
        if message.status == "undeliverable" and diagnosis.temporary:
            hint = f"Gave up after {message.attempts} attempts. {hint}"
        message.claimed_until = None
        message.last_code, message.last_reply, message.hint = failure.code, failure.reply(), hint
        message.smtp_account = claimed.account.name if claimed.account else None
        session.add(message)
        session.add(DeliveryAttempt(outbound_id=message.id, number=message.attempts, at=now,
                                    smtp_account=message.smtp_account, outcome=message.status,
                                    code=failure.code, reply=failure.reply(), hint=hint))
        return message.status


def record_not_sent(engine: Engine, claimed: Claimed, reason: str = NO_ACCOUNT, hint: str = NO_ACCOUNT_HINT) -> None:
    """No account (or no usable secret): the message waits as not_sent until queued again."""
    with session_scope(engine) as session:
        message = session.get(OutboundMessage, claimed.id)
        message.status, message.claimed_until = "not_sent", None
        message.last_code, message.last_reply, message.hint = None, reason, hint
        session.add(message)
        session.add(DeliveryAttempt(outbound_id=message.id, number=message.attempts, outcome="not_sent",
                                    reply=reason, hint=hint))
