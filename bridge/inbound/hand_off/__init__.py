"""How a routed reply reaches its recruiter: `forward`, `imap` or `none` (the employee's setting).

- forward: the original bytes with Resent-* headers on top, to the employee's own address, through
  the database-wide account. It is an entry of the outbound queue (purpose `forward`), so it has
  the queue's retries, Mail Log and hints; the stored reply is never touched.
- imap: APPEND into the INBOX of the IMAP server linked to the employee's default alias, so their
  mail client shows sent and received side by side; own state, backoff and give-up, idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge import crypto, portal
from bridge.accounts.aliases import alias_for
from bridge.accounts.oauth.tokens import bearer_for
from bridge.net.connections import endpoint_of, logout_quietly
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.net.imap_append import append_once, connect, detached_server, retry_at
from bridge.outbound.queue import NO_ACCOUNT, NO_ACCOUNT_HINT, account_for
from models import Employee, ImapServer, InboundMessage, OutboundMessage, utcnow
from models.db import session_scope
from routing.message_ids import make_message_id

MODES = ("forward", "imap", "none")


MAX_ATTEMPTS = 5


LEASE = dt.timedelta(minutes=10)


def resent(raw: bytes, resent_from: str, resent_to: str, message_id: str, when: dt.datetime) -> bytes:
    """RFC 5322 resent headers prepended: the original stays byte for byte below them."""
    from email.utils import format_datetime

    block = (f"Resent-From: {resent_from}\r\nResent-To: {resent_to}\r\nResent-Date: {format_datetime(when)}\r\n"
             f"Resent-Message-ID: {message_id}\r\n")
    return block.encode("ascii") + raw


def plan(session: Session, row: InboundMessage, settings: portal.PortalSettings | None = None) -> None:
    """After routing or assignment: set up delivery to the row's employee, once."""
    if row.employee_id is None or row.delivery != "none":
        return
    if session.exec(select(OutboundMessage.id).where(OutboundMessage.inbound_id == row.id)).first():
        return
    employee = session.get(Employee, row.employee_id)
    if employee.delivery == "imap":
        row.delivery, row.delivery_next_at = "pending", utcnow()
    elif employee.delivery == "forward":
        _queue_forward(session, row, employee, settings or portal.load(session))
        row.delivery = "queued"
    session.add(row)


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
        forward.status, forward.last_reply, forward.hint = "not_sent", NO_ACCOUNT, NO_ACCOUNT_HINT
    session.add(forward)


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
        if ok:
            row.delivery, row.delivery_error = "delivered", None
        elif row.delivery_attempts >= MAX_ATTEMPTS:
            row.delivery, row.delivery_error = "failed", error
        else:
            row.delivery_error = error
            row.delivery_next_at = utcnow() + retry_at(row.delivery_attempts)
        session.add(row)


def run(engine: Engine) -> int:
    """Every due INBOX delivery; returns how many were delivered."""
    delivered = 0
    for server_id, items in _claim(engine).items():
        server = detached_server(engine, server_id)
        if server is None:
            for inbound_id, _retry in items:
                _record(engine, inbound_id, False, "delivery `imap`: the employee's default alias is not linked to "
                                                   "an IMAP server (replybridge alias link ...)")
            continue
        client, why = connect(server, lambda server=server: bearer_for(engine, server))
        if client is None:
            for inbound_id, _retry in items:
                _record(engine, inbound_id, False, why)
            continue
        try:
            for inbound_id, retry in items:
                with session_scope(engine) as session:
                    row = session.get(InboundMessage, inbound_id)
                    raw, message_id, when = row.raw, row.message_id, row.received_at
                try:
                    append_once(client, "INBOX", message_id, raw, when, retry=retry)
                except Exception as exc:  # noqa: BLE001 - recorded and retried
                    hint = diagnose(failure_from_exception(exc, "append"), endpoint_of(server)).hint
                    _record(engine, inbound_id, False, f"APPEND to INBOX failed: {hint}")
                else:
                    _record(engine, inbound_id, True)
                    delivered += 1
        finally:
            logout_quietly(client)
    return delivered
