"""APPEND a message to an IMAP folder exactly once: a retry first searches for its Message-ID.

Used for Sent-folder copies and for delivering replies into a recruiter's INBOX, which share the
server loading, the connection with a hint on failure, the retry backoff and the lanes kept here: each
server's appends run on a connection and a thread of their own, so a hung server holds only its own.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from imapclient import IMAPClient
from sqlalchemy.engine import Engine

from bridge.errors import BridgeError
from bridge.net.connections import Bearer, StageError, endpoint_of, open_imap
from bridge.net.diagnosis import diagnose, failure_from_exception
from models import ImapServer
from models.db import session_scope

log = logging.getLogger(__name__)

MAX_LANES = 8  # servers appended to at once

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def already_there(client: IMAPClient, folder: str, message_id: str) -> bool:
    client.select_folder(folder, readonly=True)
    return bool(client.search(["HEADER", "Message-ID", message_id]))


def append_once(client: IMAPClient, folder: str, message_id: str | None, raw: bytes, when: dt.datetime,
                *, retry: bool, flags: Sequence[bytes] = ()) -> bool:
    """Append unless a retry finds the message there already; True when it appended."""
    if retry and message_id and already_there(client, folder, message_id):
        log.info("%s is in %s already; not appended again", message_id, folder)
        return False
    client.append(folder, raw, flags=list(flags), msg_time=when)
    return True


def retry_at(attempts: int) -> dt.timedelta:
    """30 s after the first failed try, doubling after each further one."""
    return dt.timedelta(seconds=30 * 2 ** max(attempts - 1, 0))


def detached_server(engine: Engine, server_id: int | None) -> ImapServer | None:
    with session_scope(engine) as session:
        server = session.get(ImapServer, server_id) if server_id is not None else None
        if server is not None:
            session.expunge(server)
        return server


def connect(server: ImapServer, bearer: Callable[[], Bearer | None]) -> tuple[IMAPClient | None, str | None]:
    """A logged-in client, or None and the hint that says why not. `bearer` fetches the OAuth token (None for
    a password account) inside, so a needed sign-in is reported like any other failure to connect."""
    try:
        return open_imap(server, bearer()), None
    except StageError as err:
        failure = failure_from_exception(err.cause, err.stage)
        return None, f"{server.name}: {diagnose(failure, endpoint_of(server)).hint}"
    except BridgeError as err:
        return None, str(err)


def per_server(groups: dict[K, list[T]], lane: Callable[[K, list[T]], int]) -> int:
    """`lane(server_id, items)` for every group, up to MAX_LANES at once; the sum of what they return."""
    if len(groups) <= 1:
        return sum(lane(key, items) for key, items in groups.items())
    with ThreadPoolExecutor(max_workers=min(MAX_LANES, len(groups)), thread_name_prefix="rb-append") as pool:
        return sum(pool.map(lambda group: lane(*group), groups.items()))
