"""Filing the exact bytes we sent in the alias's IMAP Sent folder, once.

An append is claimed (attempt counted and committed, under a lease its live holder renews) before the
IMAP APPEND, so after a crash the next try knows it is a retry and first searches the folder for the
Message-ID: nothing is filed twice, and a dead holder's appends are taken over within the lease.
Each server is appended to in a lane of its own (imap_append.per_server). Failures back off and give
up as `failed` after a few tries; the SMTP send is never undone. Each APPEND is timed (bridge.metrics) and a
message filed is written as a `filed` step line.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.imapclient import SENT
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge import leases, metrics
from bridge.accounts.oauth.tokens import bearer_for
from bridge.config import logs
from bridge.errors import BridgeError
from bridge.net.connections import endpoint_of, logout_quietly
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.net.imap_append import append_once, connect, detached_server, per_server, retry_at
from models import Alias, OutboundMessage, utcnow
from models.db import session_scope

log = logging.getLogger(__name__)
MAX_APPEND_ATTEMPTS = 5
LEASE = leases.LEASE


class FolderNotFound(BridgeError):
    """No Sent folder by SPECIAL-USE, by the configured name or by the usual names."""


def find_sent_folder(client: IMAPClient, configured: str) -> str:
    """SPECIAL-USE `\\Sent` first, else the configured name, else the usual names (imapclient's list)."""
    folders = client.list_folders()
    for flags, _delim, name in folders:
        if SENT in flags:
            return name
    names = {name for _flags, _delim, name in folders}
    if configured != "auto":
        if configured in names:
            return configured
        raise FolderNotFound(f"the Sent folder {configured!r} does not exist on the server; "
                             f"folders there: {', '.join(sorted(names)) or 'none'}")
    found = client.find_special_folder(SENT)
    if found:
        return found
    raise FolderNotFound("no Sent folder found (no SPECIAL-USE \\Sent and none of the usual names): "
                         "set it with --sent-folder NAME")


@dataclass(frozen=True)
class Pending:
    id: int
    message_id: str
    raw: bytes
    sent_at: dt.datetime
    retry: bool


def claim(engine: Engine) -> dict[int | None, list[Pending]]:
    """Claim every due append, grouped by IMAP server id (None: the alias lost its link)."""
    now = utcnow()
    due = (OutboundMessage.sent_folder == "pending", OutboundMessage.sent_folder_next_at <= now)
    with session_scope(engine) as session:
        rows = session.exec(select(OutboundMessage.id, Alias.imap_server_id)
                            .join(Alias, Alias.id == OutboundMessage.alias_id)
                            .where(*due).order_by(OutboundMessage.id)).all()
    claimed: dict[int | None, list[Pending]] = defaultdict(list)
    for outbound_id, server_id in rows:
        with session_scope(engine) as session:
            taken = session.exec(update(OutboundMessage).where(OutboundMessage.id == outbound_id, *due)
                                 .values(sent_folder_next_at=now + LEASE,
                                         sent_folder_attempts=OutboundMessage.sent_folder_attempts + 1))
            if taken.rowcount != 1:
                continue
            m = session.get(OutboundMessage, outbound_id)
            claimed[server_id].append(Pending(m.id, m.message_id, m.raw, m.sent_at or now,
                                              retry=m.sent_folder_attempts > 1))
    return claimed


def _record(engine: Engine, outbound_id: int, state: str, error: str | None = None) -> None:
    with session_scope(engine) as session:
        m = session.get(OutboundMessage, outbound_id)
        if m is None:  # erased meanwhile (bridge.privacy.erasure)
            return
        if state == "retry":
            if m.sent_folder_attempts >= MAX_APPEND_ATTEMPTS:
                state = "failed"
            else:
                state = "pending"
                m.sent_folder_next_at = utcnow() + retry_at(m.sent_folder_attempts)
        m.sent_folder, m.sent_folder_error = state, error
        session.add(m)


def renew(engine: Engine, ids: list[int]) -> None:
    """Extend the leases on appends still in this process's hands."""
    with session_scope(engine) as session:
        session.exec(update(OutboundMessage)
                     .where(OutboundMessage.id.in_(ids), OutboundMessage.sent_folder == "pending")
                     .values(sent_folder_next_at=utcnow() + LEASE))


def run(engine: Engine) -> int:
    """Do every due Sent-folder append, a lane per server; returns how many were filed."""
    claimed = claim(engine)
    with leases.Keeper(lambda ids: renew(engine, ids), "Sent-folder appends", LEASE) as held:
        held.add(item.id for items in claimed.values() for item in items)
        return per_server(claimed, lambda server_id, items: _file(engine, server_id, items, held))


def _finish(engine: Engine, held: leases.Keeper, item: Pending, state: str, error: str | None = None) -> None:
    held.done(item.id)
    _record(engine, item.id, state, error)


def _file(engine: Engine, server_id: int | None, items: list[Pending], held: leases.Keeper) -> int:
    """One server's appends on one connection; how many were filed."""
    server = detached_server(engine, server_id)
    if server is None:  # the alias was unlinked (or the server removed) after the send
        for item in items:
            _finish(engine, held, item, "failed", "the alias is no longer linked to an IMAP server")
        return 0
    client, why = connect(server, lambda: bearer_for(engine, server))
    if client is None:
        for item in items:
            _finish(engine, held, item, "retry", why)
        return 0
    filed = 0
    try:
        try:
            folder = find_sent_folder(client, server.sent_folder)
        except Exception as exc:  # noqa: BLE001 - no folder (or no answer): every append waits for its retry
            why = str(exc) if isinstance(exc, FolderNotFound) else diagnose(
                failure_from_exception(exc, "append"), endpoint_of(server)).hint
            for item in items:
                _finish(engine, held, item, "retry", why)
            return 0
        for item in items:
            started = time.perf_counter()
            try:
                append_once(client, folder, item.message_id, item.raw, item.sent_at, retry=item.retry,
                            flags=[b"\\Seen"])
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried
                diag = diagnose(failure_from_exception(exc, "append"), endpoint_of(server))
                _finish(engine, held, item, "retry", f"APPEND to {folder} failed: {diag.hint}")
            else:
                metrics.append_took(time.perf_counter() - started)
                _finish(engine, held, item, "appended")
                logs.step(log, "filed", outbound_id=item.id, folder=folder)
                filed += 1
    finally:
        logout_quietly(client)
    return filed
