"""A polled folder's state and its lease: (UIDVALIDITY, last UID) in `imap_folder_state`.

The progress advances in the transaction that stores a fetched batch (`store_batch`), so it is never
recorded for mail that was not committed: a crash fetches at most one batch again, and dedup by
Message-ID keeps that exact. One poller per folder holds a lease, taken with a conditional UPDATE, so it
holds across processes on SQLite and PostgreSQL; a dead holder's lease runs out (LEASE) and another
poller takes the folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from bridge.errors import BridgeError
from bridge.inbound import raw_store
from bridge.leases import process_running
from models import ImapFolderState, ImapServer, utcnow
from models.db import session_scope

# A folder's lease: renewed every LEASE_RENEW_S by its live watcher, so a dead one's folder is taken over
# within LEASE plus a standby watcher's look (bridge.inbound.imap.watch.STANDBY_S).
LEASE = dt.timedelta(seconds=40)
LEASE_RENEW_S = 10.0  # well inside LEASE, so a live poller never loses its folder

log = logging.getLogger(__name__)


class LeaseLost(BridgeError):
    """Another poller holds the folder now (ours ran out): stop without recording progress."""


def default_owner(pid: int | None = None) -> str:
    """A lease owner unique to this host, process and thread. `pid`: the process to name instead of this
    one, where this one is another's helper (`serve`'s services process names `serve`, the one admins see)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}:{threading.get_ident()}"


def owner_process(owner: str) -> tuple[str, int] | None:
    """(host, pid) named by a lease owner default_owner made (a watcher adds `:server id`); None for another form."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return (host, int(pid)) if host and pid.isdigit() else None


def holder_ended(owner: str) -> bool:
    """The lease names a process on this host that is no longer running. Elsewhere it cannot be known, and an
    unexpired lease is taken for a live holder's, since its holder renews it every 10 s."""
    named = owner_process(owner)
    return named is not None and named[0] == socket.gethostname() and not process_running(named[1])


def load_server(engine: Engine, server_id: int) -> ImapServer | None:
    with session_scope(engine) as session:
        server = session.get(ImapServer, server_id)
        if server is not None:
            session.expunge(server)
        return server


def folder_state_id(engine: Engine, server_id: int, folder: str) -> int:
    """The folder's state row, created on first use (two pollers may race to create it)."""
    where = (ImapFolderState.imap_server_id == server_id, ImapFolderState.folder == folder)
    with session_scope(engine) as session:
        found = session.exec(select(ImapFolderState.id).where(*where)).first()
    if found is not None:
        return found
    try:
        with session_scope(engine) as session:
            row = ImapFolderState(imap_server_id=server_id, folder=folder)
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:  # the other poller created it first
        with session_scope(engine) as session:
            return session.exec(select(ImapFolderState.id).where(*where)).one()


def take_lease(engine: Engine, state_id: int, owner: str) -> str | None:
    """Take (or renew) the folder's lease; None on success, else who holds it.

    A conditional UPDATE checked by its row count: two pollers racing cannot both win.
    """
    now = utcnow()
    free = or_(ImapFolderState.lease_owner.is_(None), ImapFolderState.lease_owner == owner,
               ImapFolderState.lease_until.is_(None), ImapFolderState.lease_until < now)
    with session_scope(engine) as session:
        taken = session.exec(update(ImapFolderState).where(ImapFolderState.id == state_id, free)
                             .values(lease_owner=owner, lease_until=now + LEASE))
        if taken.rowcount == 1:
            return None
        holder, until = session.exec(select(ImapFolderState.lease_owner, ImapFolderState.lease_until)
                                     .where(ImapFolderState.id == state_id)).one()
    return f"{holder} until {until:%Y-%m-%d %H:%M:%S} UTC"


def update_held(session: Session, state_id: int, owner: str, **values: object) -> None:
    """Update the state row only while we hold its lease; LeaseLost (rolling back) otherwise."""
    done = session.exec(update(ImapFolderState).where(ImapFolderState.id == state_id,
                                                      ImapFolderState.lease_owner == owner).values(**values))
    if done.rowcount != 1:
        raise LeaseLost("the folder's lease was taken by another poller; progress not recorded")


def renew_lease(engine: Engine, state_id: int, owner: str) -> bool:
    """Extend our lease; False when it is no longer ours (it ran out and another poller took it)."""
    try:
        with session_scope(engine) as session:
            update_held(session, state_id, owner, lease_until=utcnow() + LEASE)
    except LeaseLost:
        return False
    return True


def release_lease(engine: Engine, state_id: int, owner: str, error: str | None = None,
                  record: bool = True) -> None:
    """Give the folder up; with `record`, note the outcome (last_error cleared on success)."""
    values: dict[str, object] = {"lease_owner": None, "lease_until": None}
    if record:
        values.update(last_error=error, last_poll_at=utcnow())
    try:
        with session_scope(engine) as session:
            session.exec(update(ImapFolderState).where(ImapFolderState.id == state_id,
                                                       ImapFolderState.lease_owner == owner).values(**values))
    except SQLAlchemyError:  # the database is the thing that failed; the lease runs out by itself
        log.warning("could not release the lease on IMAP folder state %s", state_id, exc_info=True)


def record_outcome(engine: Engine, state_id: int, owner: str, error: str | None) -> None:
    """Note a pass's outcome while keeping the lease (watch)."""
    try:
        with session_scope(engine) as session:
            update_held(session, state_id, owner, last_error=error, last_poll_at=utcnow(),
                         lease_until=utcnow() + LEASE)
    except (SQLAlchemyError, LeaseLost):
        log.warning("could not record the poll outcome of IMAP folder state %s", state_id, exc_info=True)


def note_waiting(engine: Engine, state_id: int, owner: str, waiting: int) -> None:
    """How many messages the pass found above the last UID: the IMAP page's "waiting" (and a pass's progress)."""
    with session_scope(engine) as session:
        update_held(session, state_id, owner, waiting=waiting, lease_until=utcnow() + LEASE)


def store_batch(engine: Engine, state_id: int, owner: str, uidvalidity: int, last_uid: int,
                raws: list[bytes], source: str = "imap", waiting: int = 0) -> list[raw_store.Stored]:
    """Store raw messages AND advance the folder in the same transaction.

    The invariant: progress is recorded only with the commit that stores what it covers. Raises
    LeaseLost (nothing stored) when another poller took the folder meanwhile. `waiting`: what the pass
    has still to fetch after this batch.
    """
    now = utcnow()

    def advance(session: Session) -> None:
        update_held(session, state_id, owner, uidvalidity=uidvalidity, last_uid=last_uid, waiting=waiting,
                     lease_until=now + LEASE, last_poll_at=now, last_error=None)

    return raw_store.store_many(engine, [raw_store.Incoming(raw, source) for raw in raws], also=advance)


def reset_folder(engine: Engine, state_id: int, owner: str, uidvalidity: int) -> None:
    """A new UIDVALIDITY: the old UIDs mean nothing now, so scan from the start (dedup keeps it exact)."""
    with session_scope(engine) as session:
        update_held(session, state_id, owner, uidvalidity=uidvalidity, last_uid=0, lease_until=utcnow() + LEASE)
