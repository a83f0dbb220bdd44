"""One pass over a polled IMAP folder: fetch everything above its last UID, store it, route it.

Bodies are fetched with `BODY.PEEK[]` (fetching never sets \\Seen) in batches, so memory stays bounded
however much mail waits; only the UID list is held whole. Each batch is stored together with the folder's
progress (bridge.inbound.imap.folder_state), then routed, then the after-fetch action runs (flag \\Seen,
move, or nothing: bridge.inbound.imap.after_fetch). `poll_once` is `worker --once`'s and `test loop`'s
pass; bridge.inbound.imap.watch keeps a connection and runs the same `drain` between IDLEs.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from imapclient import IMAPClient
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from bridge.accounts.imap_servers import AfterFetch
from bridge.accounts.oauth.tokens import bearer_for
from bridge.errors import BridgeError, NeedsSignIn
from bridge.inbound import pipeline, raw_store
from bridge.inbound.imap import after_fetch
from bridge.inbound.imap.folder_state import (
    LeaseLost,
    folder_state_id,
    load_server,
    note_waiting,
    release_lease,
    reset_folder,
    store_batch,
    take_lease,
)
from bridge.net.connections import StageError, endpoint_of, login_of, logout_quietly, open_imap
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.ops.error_reports import records
from models import ImapFolderState, ImapServer
from models.db import session_scope

log = logging.getLogger(__name__)


class ConnectionLost(ConnectionResetError):
    """The server said BYE or closed the socket while we were in IDLE (diagnosed as a disconnect)."""


NEW_MAIL = (b"EXISTS", b"RECENT")


@dataclass
class PollReport:
    """One pass over a folder. `error` is set instead of raising, so callers can log and carry on."""

    fetched: int = 0
    stored: int = 0  # new messages
    duplicates: int = 0  # seen before (by SMTP, pipe, or an earlier pass)
    routed: int = 0
    last_uid: int = 0
    uidvalidity: int | None = None
    error: str | None = None
    idle_supported: bool = False
    lease_held_by: str | None = None  # set (with `error`) when another poller holds the folder


def _route(engine: Engine, stored: list[raw_store.Stored], texts_later: list[int]) -> int:
    """Route the new messages together; a failure is counted on the message, which stays stored for
    `finish_unrouted`. Their reply texts are read once the pass has fetched everything (`texts_later`)."""
    routed = pipeline.route_batch(engine, [item.id for item in stored if not item.duplicate])
    texts_later.extend(routed)
    return len(routed)


def pop_new_mail(client: IMAPClient) -> bool:
    """Did the server announce new mail since the last look? imaplib keeps such updates aside."""
    untagged = client._imap.untagged_responses  # noqa: SLF001 - imapclient does not expose them
    return any([untagged.pop(name, None) for name in ("EXISTS", "RECENT")])  # a list: pop both


def news_since_pass(client: IMAPClient) -> bool:
    """NOOP right before waiting: the server syncs and reports mail that arrived after the pass's
    SEARCH. Without it such a message can sit unannounced until IDLE is re-issued (Dovecot reports
    changes when it syncs, and a maildir sync has one-second granularity)."""
    with imap_stage("noop"):
        _text, responses = client.noop()
    return any(len(r) > 1 and r[1] in NEW_MAIL for r in responses)


@contextlib.contextmanager
def imap_stage(name: str) -> Iterator[None]:
    """Tag what the server (or the socket) raises with the step, for the diagnosis."""
    try:
        yield
    except (imaplib.IMAP4.error, OSError) as exc:
        raise StageError(name, exc) from None


def drain(engine: Engine, client: IMAPClient, folder: str, state_id: int, owner: str, batch_size: int,
           after: AfterFetch, report: PollReport, route: bool = True,
           stop: threading.Event | None = None) -> list[str]:
    """Fetch, store and route everything above the folder's last UID; returns after-fetch problems.

    `stop` ends the pass between batches (each batch's progress is committed with it).

    IMAP failures raise StageError; database failures raise as they are (nothing of the batch is
    recorded then, and nothing of it was flagged).
    """
    with imap_stage("folder"):
        selected = client.select_folder(folder, readonly=False)
    pop_new_mail(client)  # SELECT's own EXISTS; anything later is news
    uidvalidity = int(selected[b"UIDVALIDITY"])
    with session_scope(engine) as session:
        known_validity, last_uid, known_waiting = session.exec(
            select(ImapFolderState.uidvalidity, ImapFolderState.last_uid, ImapFolderState.waiting)
            .where(ImapFolderState.id == state_id)).one()
    if known_validity != uidvalidity:
        if known_validity is not None:
            log.warning("UIDVALIDITY of %s changed (%s -> %s): scanning it again", folder, known_validity,
                        uidvalidity)
        last_uid = 0
        reset_folder(engine, state_id, owner, uidvalidity)
    report.uidvalidity, report.last_uid = uidvalidity, last_uid
    with imap_stage("search"):  # `UID n:*` always matches the highest UID even below n: keep only what is new
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
    if len(uids) != known_waiting:  # a pass that finds nothing new, as most do, writes nothing here
        note_waiting(engine, state_id, owner, len(uids))
    problems: list[str] = []
    texts_later: list[int] = []
    try:
        _fetch_all(engine, client, uids, state_id, owner, uidvalidity, batch_size, after, report, route, stop,
                   problems, texts_later)
    finally:
        pipeline.fill_reply_texts(engine, texts_later)
    return problems


def _fetch_all(engine: Engine, client: IMAPClient, uids: list[int], state_id: int, owner: str, uidvalidity: int,
               batch_size: int, after: AfterFetch, report: PollReport, route: bool, stop: threading.Event | None,
               problems: list[str], texts_later: list[int]) -> None:
    """The batches of `drain`: fetch, store with the folder's progress, route, then the after-fetch action."""
    for start in range(0, len(uids), batch_size):
        if stop is not None and stop.is_set():
            break
        batch = uids[start:start + batch_size]
        with imap_stage("fetch"):
            fetched = client.fetch(batch, ["BODY.PEEK[]"])
        got = [uid for uid in batch if b"BODY[]" in fetched.get(uid, {})]  # expunged meanwhile: gone
        raws = [fetched[uid][b"BODY[]"] for uid in got]
        del fetched
        stored = store_batch(engine, state_id, owner, uidvalidity, batch[-1], raws,
                             waiting=len(uids) - start - len(batch))
        del raws
        report.fetched += len(got)
        report.stored += sum(not s.duplicate for s in stored)
        report.duplicates += sum(s.duplicate for s in stored)
        report.last_uid = batch[-1]
        if route:
            report.routed += _route(engine, stored, texts_later)
        try:
            with imap_stage("flag" if after.action == "seen" else after.action):
                after_fetch.apply(client, got, after)
        except StageError as err:
            if not isinstance(err.cause, imaplib.IMAP4.error) or isinstance(err.cause, imaplib.IMAP4.abort):
                raise  # the connection is gone
            # e.g. the move target is missing: the mail is stored anyway, and not fetched again
            problems.append(f"stored, but could not {after.action} UIDs {got[0]}-{got[-1]}: {err.cause}")


def describe(server: ImapServer, exc: BaseException, stage: str) -> str:
    """What failed and the hint, never the password."""
    if isinstance(exc, LeaseLost | BridgeError):
        text = str(exc)
    elif isinstance(exc, SQLAlchemyError):
        text = (f"the database failed during {stage} ({type(exc).__name__}); nothing fetched was marked as read, "
                "and the next poll fetches it again")
    else:
        if isinstance(exc, imaplib.IMAP4.abort):  # imaplib's EOF or BYE: the connection is gone
            exc = ConnectionLost(str(exc))
        failure = failure_from_exception(exc, stage)
        hint = diagnose(failure, endpoint_of(server)).hint
        text = f"{server.name}: IMAP {stage} failed ({failure.reply()}): {hint}"
    return _redact(text, server)


def _redact(text: str, server: ImapServer) -> str:
    with contextlib.suppress(Exception):
        secret = login_of(server).secret
        password = secret.reveal() if secret else ""
        if password and password in text:
            text = text.replace(password, "[password]")
    return text


def keepalive(client: IMAPClient) -> None:
    """TCP keepalive, so a peer that vanished without a FIN ends an IDLE within minutes, not at re-issue."""
    with contextlib.suppress(OSError, AttributeError):
        sock = client.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 20), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, option):  # Linux names; elsewhere the system defaults apply
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def poll_target(engine: Engine, server_id: int, after: str | None) -> tuple[ImapServer, AfterFetch] | str:
    """The server and its after-fetch action, or why there is nothing to poll."""
    server = load_server(engine, server_id)
    if server is None:
        return f"no IMAP server with id {server_id}"
    if not server.poll_folder:
        return f"IMAP server {server.name!r} has no poll folder"
    # `poll_after` is the configured action where the column exists (seen | move:FOLDER | none)
    return server, AfterFetch.parse(after or getattr(server, "poll_after", None) or "seen")


def poll_once(engine: Engine, server_id: int, owner: str, batch_size: int = 100,
              after: str | None = None, *, route: bool = True) -> PollReport:
    """One pass over the server's poll folder under its lease; failures come back in `report.error`.

    `after`: seen | move:FOLDER | none; by default the server's configured action, else seen.
    `route=False` leaves routing to the worker's `finish_unrouted` (a bulk import drains faster).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    target = poll_target(engine, server_id, after)
    if isinstance(target, str):
        return PollReport(error=target)
    server, action = target
    try:
        state_id = folder_state_id(engine, server.id, server.poll_folder)
        holder = take_lease(engine, state_id, owner)
    except SQLAlchemyError as exc:
        return PollReport(error=describe(server, exc, "lease"))
    if holder is not None:
        return PollReport(error=f"lease held by {holder}", lease_held_by=holder)
    report = PollReport()
    client: IMAPClient | None = None
    try:
        client = open_imap(server, bearer_for(engine, server))
        records.poller_ok(engine, server.name)  # error reports: it connects
        report.idle_supported = client.has_capability("IDLE")
        problems = drain(engine, client, server.poll_folder, state_id, owner, batch_size, action, report, route)
        report.error = "; ".join(problems) or None
    except StageError as err:
        report.error = describe(server, err.cause, err.stage)
        note_connect_failure(engine, server, client, err, report.error)
    except Exception as exc:  # noqa: BLE001 - reported, never raised: the caller polls again later
        report.error = describe(server, exc, "poll")
        note_connect_failure(engine, server, client, exc, report.error)
    finally:
        logout_quietly(client)
        release_lease(engine, state_id, owner, report.error)
    if report.error:
        log.warning("polling %s/%s: %s", server.name, server.poll_folder, report.error)
    return report


def note_connect_failure(engine: Engine, server: ImapServer, client: IMAPClient | None, exc: BaseException,
                          error: str) -> None:
    """Error reports: no client means the connection (connect, TLS or login) failed. A grant that needs a
    new sign-in is reported as its own condition by the token code."""
    if client is None and not isinstance(exc, NeedsSignIn):
        records.poller_failed(engine, server.name, error)
