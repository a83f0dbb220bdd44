"""Where a loop probe that did not come back stopped: waiting in a polled catch-all folder (delivered, but no
poller fetched it) or in none of them (never delivered to the bridge).

Read-only: each poll folder is EXAMINEd and searched for the probe's Message-ID on a connection of its own, so
flags, the folder's progress and the pollers' leases are left as they are. What the folder's poller last did
(bridge.inbound.imap.folder_state) is told with it, as that is where the admin looks next.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge.accounts.oauth.tokens import bearer_for
from bridge.errors import BridgeError
from bridge.inbound.imap.one_pass import imap_stage
from bridge.net.connections import StageError, logout_quietly, open_imap
from bridge.net.diagnosis import failure_from_exception
from models import ImapFolderState, ImapServer, aware, utcnow
from models.db import session_scope


@dataclass
class Trace:
    """The poll folders looked into ("server/folder"), those where the probe waits (with what their poller last
    did), and those that could not be looked into (with why)."""

    looked: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def look(engine: Engine, message_id: str) -> Trace:
    """Look for the probe in every poll folder; never raises for a server that cannot be reached."""
    trace = Trace()
    for server in _poll_servers(engine):
        place = f"{server.name}/{server.poll_folder}"
        try:
            holds = _holds(engine, server, message_id)
        except StageError as err:
            trace.problems.append(f"{place}: {failure_from_exception(err.cause, err.stage).reply()}")
            continue
        except BridgeError as err:  # e.g. its sign-in must be renewed
            trace.problems.append(f"{place}: {err}")
            continue
        trace.looked.append(place)
        if holds:
            trace.waiting.append(f"{place} ({poller_state(engine, server)})")
    return trace


def _poll_servers(engine: Engine) -> list[ImapServer]:
    with session_scope(engine) as session:
        servers = list(session.exec(select(ImapServer).where(ImapServer.poll_folder.is_not(None))
                                    .order_by(ImapServer.name)))
        for server in servers:
            session.expunge(server)
    return servers


def _holds(engine: Engine, server: ImapServer, message_id: str) -> bool:
    client = open_imap(server, bearer_for(engine, server))
    try:
        with imap_stage("folder"):
            client.select_folder(server.poll_folder, readonly=True)
        with imap_stage("search"):
            return bool(client.search(["HEADER", "Message-ID", message_id]))
    finally:
        logout_quietly(client)


def poller_state(engine: Engine, server: ImapServer, now: dt.datetime | None = None) -> str:
    """What the folder's poller last did, in words: who holds the folder, its last pass and last error."""
    now = now or utcnow()
    with session_scope(engine) as session:
        state = session.exec(select(ImapFolderState).where(ImapFolderState.imap_server_id == server.id,
                                                           ImapFolderState.folder == server.poll_folder)).first()
        if state is None or state.last_poll_at is None:
            return "no poller has looked at it yet"
        held = state.lease_owner is not None and state.lease_until is not None and aware(state.lease_until) > now
        words = [f"held by the poller {state.lease_owner}" if held else "no poller holds it",
                 f"last pass {aware(state.last_poll_at):%Y-%m-%d %H:%M:%S} UTC"]
        if state.last_error:
            words.append(f"last error: {state.last_error}")
    return ", ".join(words)
