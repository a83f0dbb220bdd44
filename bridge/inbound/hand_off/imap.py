"""`imap`: APPEND the reply into the INBOX of the IMAP server linked to the employee's default alias.

`plan` marks the row pending; `run` (each worker run) claims due rows with a conditional UPDATE and a
lease its live holder renews (bridge.leases), appends them in a lane per server (a retry first searches
for the Message-ID, so nothing lands twice), and backs off until MAX_ATTEMPTS, then gives up as
`failed` with the reason. An APPEND done is written as a `filed` step line."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge import leases, portal
from bridge.accounts.aliases import alias_for
from bridge.accounts.oauth.tokens import bearer_for
from bridge.config import logs
from bridge.net.connections import endpoint_of, logout_quietly
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.net.imap_append import append_once, connect, detached_server, per_server, retry_at
from models import Employee, ImapServer, InboundMessage, utcnow
from models.db import session_scope

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
LEASE = leases.LEASE


def plan(session: Session, row: InboundMessage, employee: Employee, settings: portal.PortalSettings | None) -> None:
    row.delivery, row.delivery_next_at = "pending", utcnow()


def _imap_server_for(session: Session, employee_id: int) -> ImapServer | None:
    employee = session.get(Employee, employee_id)
    alias = alias_for(session, employee, None) if employee else None
    return session.get(ImapServer, alias.imap_server_id) if alias and alias.imap_server_id else None


def _claim(engine: Engine) -> dict[int | None, list[tuple[int, bool]]]:
    """Due INBOX appends grouped by IMAP server: (inbound id, is a retry)."""
    now = utcnow()
    due = (InboundMessage.delivery == "pending", InboundMessage.delivery_next_at <= now)
    with session_scope(engine) as session:
        rows = session.exec(select(InboundMessage.id, InboundMessage.employee_id).where(*due)).all()
        claimed: dict[int | None, list[tuple[int, bool]]] = defaultdict(list)
        for inbound_id, employee_id in rows:
            taken = session.exec(update(InboundMessage).where(InboundMessage.id == inbound_id, *due).values(
                delivery_next_at=now + LEASE, delivery_attempts=InboundMessage.delivery_attempts + 1))
            if taken.rowcount == 1:
                server = _imap_server_for(session, employee_id)
                attempts = session.get(InboundMessage, inbound_id).delivery_attempts
                claimed[server.id if server else None].append((inbound_id, attempts > 1))
    return claimed


def _record(engine: Engine, inbound_id: int, ok: bool, error: str | None = None) -> None:
    with session_scope(engine) as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None:  # erased meanwhile (bridge.privacy.erasure)
            return
        if ok:
            row.delivery, row.delivery_error = "delivered", None
        elif row.delivery_attempts >= MAX_ATTEMPTS:
            row.delivery, row.delivery_error = "failed", error
        else:
            row.delivery_error = error
            row.delivery_next_at = utcnow() + retry_at(row.delivery_attempts)
        session.add(row)


def renew(engine: Engine, ids: list[int]) -> None:
    """Extend the leases on hand-offs still in this process's hands."""
    with session_scope(engine) as session:
        session.exec(update(InboundMessage).where(InboundMessage.id.in_(ids), InboundMessage.delivery == "pending")
                     .values(delivery_next_at=utcnow() + LEASE))


def run(engine: Engine) -> int:
    """Every due INBOX delivery, a lane per server; returns how many were delivered."""
    claimed = _claim(engine)
    with leases.Keeper(lambda ids: renew(engine, ids), "INBOX hand-offs", LEASE) as held:
        held.add(inbound_id for items in claimed.values() for inbound_id, _retry in items)

        def finish(inbound_id: int, ok: bool, error: str | None = None) -> None:
            held.done(inbound_id)
            _record(engine, inbound_id, ok, error)

        return per_server(claimed, lambda server_id, items: _deliver(engine, server_id, items, finish))


def _deliver(engine: Engine, server_id: int | None, items: list[tuple[int, bool]],
             finish: Callable[..., None]) -> int:
    """One server's INBOX appends on one connection; how many were delivered."""
    server = detached_server(engine, server_id)
    if server is None:
        for inbound_id, _retry in items:
            finish(inbound_id, False, "delivery `imap`: the employee's default alias is not linked to "
                                      "an IMAP server (replybridge alias link ...)")
        return 0
    client, why = connect(server, lambda: bearer_for(engine, server))
    if client is None:
        for inbound_id, _retry in items:
            finish(inbound_id, False, why)
        return 0
    delivered = 0
    try:
        for inbound_id, retry in items:
            with session_scope(engine) as session:
                row = session.get(InboundMessage, inbound_id)
                if row is None:  # erased since it was claimed: nothing to hand off
                    finish(inbound_id, False)
                    continue
                raw, message_id, when = row.raw, row.message_id, row.received_at
            try:
                append_once(client, "INBOX", message_id, raw, when, retry=retry)
            except Exception as exc:  # noqa: BLE001 - recorded and retried
                hint = diagnose(failure_from_exception(exc, "append"), endpoint_of(server)).hint
                finish(inbound_id, False, f"APPEND to INBOX failed: {hint}")
            else:
                finish(inbound_id, True)
                logs.step(log, "filed", inbound_id=inbound_id, folder="INBOX")
                delivered += 1
    finally:
        logout_quietly(client)
    return delivered
