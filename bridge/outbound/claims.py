"""Claiming due outbound mail and recording each attempt's result.

A claim is its own committed transaction (`SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL), so
several workers never take the same message; a claim whose worker died is taken again when its
lease runs out. The alias's rate limit (delay between emails) is held in the database so it holds
across workers and runs.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge import leases, portal
from bridge.accounts import smtp_accounts
from bridge.net.diagnosis import Diagnosis, Failure
from bridge.ops.webhooks import outbox
from bridge.outbound.queue import REQUEUE, account_for, no_account
from models import Alias, DeliveryAttempt, OutboundMessage, SmtpAccount, utcnow
from models.db import session_scope

MAX_ATTEMPTS = 3
# A claim's lease: the sender renews it while the message is in its hands (bridge.leases), so a worker that
# dies gives its claims up within LEASE, and a live one never loses them to another.
LEASE = leases.LEASE


@dataclass(frozen=True)
class Claimed:
    """What the sender and the recorder need, copied out of the claiming transaction."""

    id: int
    envelope_from: str
    to_addr: str
    raw: bytes
    account: SmtpAccount | None
    attempts: int  # attempts made before this one
    copy_state: str  # sent_folder state after a successful send: none | pending | skipped


@dataclass(frozen=True)
class Waiting:
    """Due mail exists, but every alias it goes through must wait until `until` (rate limit)."""

    until: dt.datetime


def _due(now: dt.datetime):  # noqa: ANN202 - a SQL expression
    waiting = and_(OutboundMessage.status.in_(("queued", "deferred")), OutboundMessage.next_attempt_at <= now)
    stale = and_(OutboundMessage.status == "sending", OutboundMessage.claimed_until < now)
    return or_(waiting, stale)


def _copy_state(alias: Alias | None, account: SmtpAccount | None) -> str:
    if alias is None or alias.imap_server_id is None or account is None:
        return "none"
    return "skipped" if account.provider_files_sent else "pending"


def _not_through(session: Session, busy: frozenset[int | None]) -> list[ColumnElement[bool]]:
    """SQL conditions leaving out the mail of the accounts in `busy`, in the query itself (however much of
    theirs is due first). The account as account_for_alias picks it: the alias's own for a person's mail,
    else the database-wide one."""
    if not busy:
        return []
    default = smtp_accounts.default_smtp(session)
    account = case((and_(Alias.smtp_account_id.is_not(None), OutboundMessage.automated.is_(False)),
                    Alias.smtp_account_id), else_=default.id if default else None)
    ids = [a for a in busy if a is not None]
    conditions = [or_(account.is_(None), account.not_in(ids))] if ids else []
    return conditions + ([account.is_not(None)] if None in busy else [])


def claim_batch(engine: Engine, limit: int = 20, busy: frozenset[int | None] = frozenset()
                ) -> list[Claimed] | Waiting | None:
    """Claim up to `limit` due messages, oldest first, at most one per rate-limited alias, none through the
    SMTP accounts in `busy` (ids; None: no account) whose lanes are still sending.

    Each claim is a conditional UPDATE (still due? alias free?) checked by its row count, so two
    workers racing for a row cannot both win, on SQLite as on PostgreSQL; one transaction (one
    commit) covers the batch.
    """
    now = utcnow()
    earliest: dt.datetime | None = None
    taken_ids: list[int] = []
    held_aliases: set[int] = set()
    with session_scope(engine) as session:
        candidates = session.exec(
            select(OutboundMessage.id, OutboundMessage.alias_id, Alias.next_send_at, Alias.delay_ms)
            .join(Alias, Alias.id == OutboundMessage.alias_id, isouter=True)
            .where(_due(now), *_not_through(session, busy))
            .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id).limit(limit * 3)
        ).all()
        for message_id, alias_id, next_send_at, delay_ms in candidates:
            if len(taken_ids) == limit:
                break
            if next_send_at is not None and next_send_at > now:
                earliest = min(earliest or next_send_at, next_send_at)
                continue
            if delay_ms:
                if alias_id in held_aliases:
                    continue
                free = or_(Alias.next_send_at.is_(None), Alias.next_send_at <= now)
                held = session.exec(update(Alias).where(Alias.id == alias_id, free)
                                    .values(next_send_at=now + dt.timedelta(milliseconds=delay_ms)))
                if held.rowcount != 1:  # another worker just sent through this alias
                    continue
                held_aliases.add(alias_id)
            taken = session.exec(update(OutboundMessage).where(OutboundMessage.id == message_id, _due(now))
                                 .values(status="sending", claimed_until=now + LEASE))
            if taken.rowcount == 1:
                taken_ids.append(message_id)
        if not taken_ids:
            return Waiting(earliest) if earliest else None
        messages = session.exec(select(OutboundMessage).where(OutboundMessage.id.in_(taken_ids))
                                .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)).all()
        claimed = []
        for m in messages:
            account = account_for(session, m)
            alias = session.get(Alias, m.alias_id) if m.alias_id else None
            claimed.append(Claimed(m.id, m.envelope_from, m.to_addr, m.raw, account, m.attempts,
                                   _copy_state(alias, account)))
        session.expunge_all()
        return claimed


def renew(engine: Engine, ids: list[int]) -> None:
    """Extend the claims still in this worker's hands."""
    with session_scope(engine) as session:
        session.exec(update(OutboundMessage).where(OutboundMessage.id.in_(ids), OutboundMessage.status == "sending")
                     .values(claimed_until=utcnow() + LEASE))


def record_sent(engine: Engine, claimed: Claimed, code: int, text: str) -> None:
    now = utcnow()
    reply = f"{code} {text}".strip()
    account = claimed.account.name if claimed.account else None
    with session_scope(engine) as session:
        found = session.exec(update(OutboundMessage).where(OutboundMessage.id == claimed.id).values(
            attempts=claimed.attempts + 1, status="sent", sent_at=now, claimed_until=None, last_code=code,
            last_reply=reply, hint=None, smtp_account=account, sent_folder=claimed.copy_state,
            sent_folder_next_at=now)).rowcount
        if not found:  # erased while in flight (bridge.privacy.erasure): nothing of it is recorded
            return
        session.add(DeliveryAttempt(outbound_id=claimed.id, number=claimed.attempts + 1, at=now,
                                    smtp_account=account, outcome="sent", code=code, reply=reply))
        outbox.emit_outbound(session, "outbound.sent", claimed.id)


def record_failure(engine: Engine, claimed: Claimed, failure: Failure, diagnosis: Diagnosis) -> str:
    """Deferred with backoff while temporary and attempts remain, else undeliverable. Returns the status
    ("cancelled" when the message was erased while in flight)."""
    now = utcnow()
    with session_scope(engine) as session:
        message = session.get(OutboundMessage, claimed.id)
        if message is None:  # erased while in flight: nothing left to retry
            return "cancelled"
        delays = portal.load(session).retry_delays
        message.attempts += 1
        if diagnosis.temporary and message.attempts < MAX_ATTEMPTS:
            message.status = "deferred"
            message.next_attempt_at = now + dt.timedelta(seconds=delays[message.attempts - 1])
        else:
            message.status = "undeliverable"
        hint = diagnosis.hint
        if message.status == "undeliverable" and diagnosis.temporary:
            hint = gave_up(message.attempts, hint)
        message.claimed_until = None
        message.last_code, message.last_reply, message.hint = failure.code, failure.reply(), hint
        message.smtp_account = claimed.account.name if claimed.account else None
        session.add(message)
        session.add(DeliveryAttempt(outbound_id=message.id, number=message.attempts, at=now,
                                    smtp_account=message.smtp_account, outcome=message.status,
                                    code=failure.code, reply=failure.reply(), hint=hint))
        if message.status == "undeliverable":
            outbox.emit_outbound(session, "outbound.undeliverable", message)
        return message.status


_RETRIES = re.compile(r"[:.]?\s*[Tt]he bridge retries\.")


def gave_up(attempts: int, hint: str) -> str:
    """A temporary failure's hint once the retries are spent: it no longer says the bridge retries."""
    cause = _RETRIES.sub(".", hint, count=1).strip()
    return f"Gave up after {attempts} attempts. {cause} Queue it again once that has passed ({REQUEUE})."


def record_not_sent(engine: Engine, claimed: Claimed, reason: str | None = None, hint: str | None = None) -> None:
    """No account (or no usable secret): the message waits as not_sent until queued again."""
    with session_scope(engine) as session:
        message = session.get(OutboundMessage, claimed.id)
        if message is None:  # erased while in flight
            return
        if reason is None:
            reason, hint = no_account(session, message)
        message.status, message.claimed_until = "not_sent", None
        message.last_code, message.last_reply, message.hint = None, reason, hint
        if claimed.account is not None:
            message.smtp_account = claimed.account.name
        session.add(message)
        session.add(DeliveryAttempt(outbound_id=message.id, number=message.attempts, outcome="not_sent",
                                    reply=reason, hint=hint))
