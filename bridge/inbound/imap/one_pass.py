"""Polling IMAP folders for inbound replies: the catch-all mailbox numbered addresses land in.

Per folder, (UIDVALIDITY, last UID) lives in `imap_folder_state` and advances in the transaction
that stores a fetched batch, so progress is never recorded for mail that was not committed: a
crash fetches at most one batch again, and dedup by Message-ID keeps that exact. One poller per
folder holds a lease (a conditional UPDATE, so it holds across processes on SQLite and PostgreSQL).
Bodies are fetched with `BODY.PEEK[]` (fetching never sets \\Seen) in batches, so memory stays
bounded however much mail waits; only the UID list is held whole. After the commit each new message
is routed, and the batch is flagged \\Seen or moved as configured.

`watch` keeps one connection, waits in IDLE where the server offers it (polling otherwise) and
reconnects with exponential backoff when the server goes away.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from imapclient import IMAPClient
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from bridge.accounts.oauth.tokens import bearer_for
from bridge.errors import BridgeError, NeedsSignIn
from bridge.inbound import pipeline
from bridge.net.connections import StageError, endpoint_of, login_of, logout_quietly, open_imap
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.ops.error_reports import records
from models import ImapFolderState, ImapServer, utcnow
from models.db import session_scope

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=5)
LEASE_RENEW_S = 60.0  # well inside LEASE, so a live poller never loses its folder
IDLE_SLICE_S = 1.0  # idle_check() in slices this long, so `stop` is honoured within about a second
IDLE_TIMEOUT_S = 29 * 60 - 60  # RFC 2177: servers may drop an IDLE after 30 minutes; re-issue before 29
BACKOFF_INITIAL_S, BACKOFF_MAX_S = 1.0, 300.0
SEEN = b"\\Seen"
NEW_MAIL = (b"EXISTS", b"RECENT")


class LeaseLost(BridgeError):
    """Another poller holds the folder now (ours ran out): stop without recording progress."""


class ConnectionLost(ConnectionResetError):
    """The server said BYE or closed the socket while we were in IDLE (diagnosed as a disconnect)."""


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


@dataclass(frozen=True)
class AfterFetch:
    """What to do with a message once it is stored: flag it \\Seen, move it, or leave it."""

    action: str  # seen | move | none
    folder: str | None = None

    @classmethod
    def parse(cls, text: str) -> AfterFetch:
        if text in ("seen", "none"):
            return cls(text)
        if text.startswith("move:") and text[5:].strip():
            return cls("move", text[5:].strip())
        raise ValueError(f"after-fetch action must be seen, none or move:FOLDER, not {text!r}")


def default_owner() -> str:
    """A lease owner unique to this host, process and thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


# --- the folder state and its lease -------------------------------------------------------------

def _load_server(engine: Engine, server_id: int) -> ImapServer | None:
    with session_scope(engine) as session:
        server = session.get(ImapServer, server_id)
        if server is not None:
            session.expunge(server)
        return server


def _state_id(engine: Engine, server_id: int, folder: str) -> int:
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


def _update_held(session: Session, state_id: int, owner: str, **values: object) -> None:
    """Update the state row only while we hold its lease; LeaseLost (rolling back) otherwise."""
    done = session.exec(update(ImapFolderState).where(ImapFolderState.id == state_id,
                                                      ImapFolderState.lease_owner == owner).values(**values))
    if done.rowcount != 1:
        raise LeaseLost("the folder's lease was taken by another poller; progress not recorded")


def renew_lease(engine: Engine, state_id: int, owner: str) -> bool:
    """Extend our lease; False when it is no longer ours (it ran out and another poller took it)."""
    try:
        with session_scope(engine) as session:
            _update_held(session, state_id, owner, lease_until=utcnow() + LEASE)
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


def _record(engine: Engine, state_id: int, owner: str, error: str | None) -> None:
    """Note a pass's outcome while keeping the lease (watch)."""
    try:
        with session_scope(engine) as session:
            _update_held(session, state_id, owner, last_error=error, last_poll_at=utcnow(),
                         lease_until=utcnow() + LEASE)
    except (SQLAlchemyError, LeaseLost):
        log.warning("could not record the poll outcome of IMAP folder state %s", state_id, exc_info=True)


# --- storing a batch and its progress together --------------------------------------------------

def store_batch(engine: Engine, state_id: int, owner: str, uidvalidity: int, last_uid: int,
                raws: list[bytes], source: str = "imap") -> list[pipeline.Stored]:
    """Store raw messages AND advance the folder in the same transaction.

    The invariant: progress is recorded only with the commit that stores what it covers. Raises
    LeaseLost (nothing stored) when another poller took the folder meanwhile.
    """
    now = utcnow()

    def advance(session: Session) -> None:
        _update_held(session, state_id, owner, uidvalidity=uidvalidity, last_uid=last_uid,
                     lease_until=now + LEASE, last_poll_at=now, last_error=None)

    return pipeline.store_many(engine, [pipeline.Incoming(raw, source) for raw in raws], also=advance)


def _reset_folder(engine: Engine, state_id: int, owner: str, uidvalidity: int) -> None:
    """A new UIDVALIDITY: the old UIDs mean nothing now, so scan from the start (dedup keeps it exact)."""
    with session_scope(engine) as session:
        _update_held(session, state_id, owner, uidvalidity=uidvalidity, last_uid=0, lease_until=utcnow() + LEASE)


def _route(engine: Engine, stored: list[pipeline.Stored]) -> int:
    """Route the new messages; a failure is logged, the message stays stored for `finish_unrouted`."""
    routed = 0
    for item in stored:
        if item.duplicate:
            continue
        try:
            pipeline.process(engine, item.id)
            routed += 1
        except Exception:  # noqa: BLE001 - one bad message must not stop the others; it stays stored
            log.exception("routing inbound message %s failed; it stays stored and is retried", item.id)
    return routed


# --- one pass over the folder ---------------------------------------------------------------------

def _pop_new_mail(client: IMAPClient) -> bool:
    """Did the server announce new mail since the last look? imaplib keeps such updates aside."""
    untagged = client._imap.untagged_responses  # noqa: SLF001 - imapclient does not expose them
    return any([untagged.pop(name, None) for name in ("EXISTS", "RECENT")])  # a list: pop both


def _news_since_pass(client: IMAPClient) -> bool:
    """NOOP right before waiting: the server syncs and reports mail that arrived after the pass's
    SEARCH. Without it such a message can sit unannounced until IDLE is re-issued (Dovecot reports
    changes when it syncs, and a maildir sync has one-second granularity)."""
    with _stage("noop"):
        _text, responses = client.noop()
    return any(len(r) > 1 and r[1] in NEW_MAIL for r in responses)


@contextlib.contextmanager
def _stage(name: str) -> Iterator[None]:
    """Tag what the server (or the socket) raises with the step, for the diagnosis."""
    try:
        yield
    except (imaplib.IMAP4.error, OSError) as exc:
        raise StageError(name, exc) from None


def _apply_after(client: IMAPClient, uids: list[int], after: AfterFetch) -> None:
    if not uids or after.action == "none":
        return
    if after.action == "seen":
        client.add_flags(uids, [SEEN], silent=True)
    elif client.has_capability("MOVE"):
        client.move(uids, after.folder)
    else:  # COPY, then delete exactly these (UID EXPUNGE where UIDPLUS allows)
        client.copy(uids, after.folder)
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        if client.has_capability("UIDPLUS"):
            client.expunge(uids)
        else:
            client.expunge()


def _drain(engine: Engine, client: IMAPClient, folder: str, state_id: int, owner: str, batch_size: int,
           after: AfterFetch, report: PollReport, route: bool = True,
           stop: threading.Event | None = None) -> list[str]:
    """Fetch, store and route everything above the folder's last UID; returns after-fetch problems.

    `stop` ends the pass between batches (each batch's progress is committed with it).

    IMAP failures raise StageError; database failures raise as they are (nothing of the batch is
    recorded then, and nothing of it was flagged).
    """
    with _stage("folder"):
        selected = client.select_folder(folder, readonly=False)
    _pop_new_mail(client)  # SELECT's own EXISTS; anything later is news
    uidvalidity = int(selected[b"UIDVALIDITY"])
    with session_scope(engine) as session:
        known_validity, last_uid = session.exec(select(ImapFolderState.uidvalidity, ImapFolderState.last_uid)
                                                .where(ImapFolderState.id == state_id)).one()
    if known_validity != uidvalidity:
        if known_validity is not None:
            log.warning("UIDVALIDITY of %s changed (%s -> %s): scanning it again", folder, known_validity,
                        uidvalidity)
        last_uid = 0
        _reset_folder(engine, state_id, owner, uidvalidity)
    report.uidvalidity, report.last_uid = uidvalidity, last_uid
    with _stage("search"):  # `UID n:*` always matches the highest UID even below n: keep only what is new
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
    problems: list[str] = []
    for start in range(0, len(uids), batch_size):
        if stop is not None and stop.is_set():
            break
        batch = uids[start:start + batch_size]
        with _stage("fetch"):
            fetched = client.fetch(batch, ["BODY.PEEK[]"])
        got = [uid for uid in batch if b"BODY[]" in fetched.get(uid, {})]  # expunged meanwhile: gone
        raws = [fetched[uid][b"BODY[]"] for uid in got]
        del fetched
        stored = store_batch(engine, state_id, owner, uidvalidity, batch[-1], raws)
        del raws
        report.fetched += len(got)
        report.stored += sum(not s.duplicate for s in stored)
        report.duplicates += sum(s.duplicate for s in stored)
        report.last_uid = batch[-1]
        if route:
            report.routed += _route(engine, stored)
        try:
            with _stage("flag" if after.action == "seen" else after.action):
                _apply_after(client, got, after)
        except StageError as err:
            if not isinstance(err.cause, imaplib.IMAP4.error) or isinstance(err.cause, imaplib.IMAP4.abort):
                raise  # the connection is gone
            # e.g. the move target is missing: the mail is stored anyway, and not fetched again
            problems.append(f"stored, but could not {after.action} UIDs {got[0]}-{got[-1]}: {err.cause}")
    return problems


def _describe(server: ImapServer, exc: BaseException, stage: str) -> str:
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


def _keepalive(client: IMAPClient) -> None:
    """TCP keepalive, so a peer that vanished without a FIN ends an IDLE within minutes, not at re-issue."""
    with contextlib.suppress(OSError, AttributeError):
        sock = client.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 20), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, option):  # Linux names; elsewhere the system defaults apply
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _target(engine: Engine, server_id: int, after: str | None) -> tuple[ImapServer, AfterFetch] | str:
    """The server and its after-fetch action, or why there is nothing to poll."""
    server = _load_server(engine, server_id)
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
    target = _target(engine, server_id, after)
    if isinstance(target, str):
        return PollReport(error=target)
    server, action = target
    try:
        state_id = _state_id(engine, server.id, server.poll_folder)
        holder = take_lease(engine, state_id, owner)
    except SQLAlchemyError as exc:
        return PollReport(error=_describe(server, exc, "lease"))
    if holder is not None:
        return PollReport(error=f"lease held by {holder}", lease_held_by=holder)
    report = PollReport()
    client: IMAPClient | None = None
    try:
        client = open_imap(server, bearer_for(engine, server))
        records.poller_ok(engine, server.name)  # error reports: it connects
        report.idle_supported = client.has_capability("IDLE")
        problems = _drain(engine, client, server.poll_folder, state_id, owner, batch_size, action, report, route)
        report.error = "; ".join(problems) or None
    except StageError as err:
        report.error = _describe(server, err.cause, err.stage)
        _note_connect_failure(engine, server, client, err, report.error)
    except Exception as exc:  # noqa: BLE001 - reported, never raised: the caller polls again later
        report.error = _describe(server, exc, "poll")
        _note_connect_failure(engine, server, client, exc, report.error)
    finally:
        logout_quietly(client)
        release_lease(engine, state_id, owner, report.error)
    if report.error:
        log.warning("polling %s/%s: %s", server.name, server.poll_folder, report.error)
    return report


def _note_connect_failure(engine: Engine, server: ImapServer, client: IMAPClient | None, exc: BaseException,
                          error: str) -> None:
    """Error reports: no client means the connection (connect, TLS or login) failed. A grant that needs a
    new sign-in is reported as its own condition by the token code."""
    if client is None and not isinstance(exc, NeedsSignIn):
        records.poller_failed(engine, server.name, error)


# --- watching a folder ------------------------------------------------------------------------------

class _Watcher:
    """The state `watch` keeps between passes: one connection, the lease, the backoff."""

    def __init__(self, engine: Engine, server_id: int, owner: str, stop: threading.Event, poll_interval: float,
                 idle_timeout: float, batch_size: int, after: str | None, backoff: tuple[float, float]) -> None:
        self.engine, self.server_id, self.owner, self.stop = engine, server_id, owner, stop
        self.poll_interval, self.idle_timeout, self.batch_size, self.after = (poll_interval, idle_timeout,
                                                                              batch_size, after)
        self.backoff_initial, self.backoff_max = backoff
        self.client: IMAPClient | None = None
        self.server: ImapServer | None = None
        self.action = AfterFetch("seen")
        self.state_id: int | None = None

    def run(self) -> None:
        backoff = self.backoff_initial
        try:
            while not self.stop.is_set():
                try:
                    outcome = self._cycle()
                except Exception:  # noqa: BLE001 - a watcher thread must never die of one bad pass
                    log.exception("IMAP watcher for server %s failed; retrying", self.server_id)
                    outcome = "failed"
                if outcome == "failed":
                    self._drop(release=True)
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
                elif outcome == "standby":  # another poller holds the folder; look again later
                    self._drop(release=False)
                    self.stop.wait(self.poll_interval)
                else:
                    backoff = self.backoff_initial
        finally:
            self._drop(release=True, record=False)

    def _drop(self, release: bool, record: bool = False) -> None:
        logout_quietly(self.client)
        self.client = None
        if release and self.state_id is not None:
            release_lease(self.engine, self.state_id, self.owner, record=record)

    def _fail(self, exc: BaseException, stage: str) -> str:
        error = _describe(self.server, exc, stage) if self.server is not None else str(exc)
        log.warning("watching IMAP server %s: %s", self.server_id, error)
        if self.server is not None:
            _note_connect_failure(self.engine, self.server, self.client, exc, error)
        if self.state_id is not None:
            _record(self.engine, self.state_id, self.owner, error)
        return "failed"

    def _cycle(self) -> str:
        """Lease, connect when needed, one pass, then wait (IDLE or sleep). Returns ok | failed | standby."""
        if self.client is None:  # settings are read again on every reconnect
            target = _target(self.engine, self.server_id, self.after)
            if isinstance(target, str):
                log.warning("not watching IMAP server %s: %s", self.server_id, target)
                return "standby"
            self.server, self.action = target
            self.state_id = _state_id(self.engine, self.server.id, self.server.poll_folder)
        if take_lease(self.engine, self.state_id, self.owner) is not None:
            return "standby"
        try:
            if self.client is None:
                self.client = open_imap(self.server, bearer_for(self.engine, self.server))
                records.poller_ok(self.engine, self.server.name)  # error reports: it connects
                _keepalive(self.client)
            report = PollReport(idle_supported=self.client.has_capability("IDLE"))
            problems = _drain(self.engine, self.client, self.server.poll_folder, self.state_id, self.owner,
                              self.batch_size, self.action, report, stop=self.stop)
            report.error = "; ".join(problems) or None
            _record(self.engine, self.state_id, self.owner, report.error)
            if report.fetched or _pop_new_mail(self.client) or _news_since_pass(self.client):
                return "ok"  # mail may have arrived during the pass: look again before waiting
            if report.idle_supported:
                with _stage("idle"):
                    self._idle()
            else:
                self._sleep()
        except LeaseLost:
            return "standby"
        except StageError as err:
            return self._fail(err.cause, err.stage)
        except Exception as exc:  # noqa: BLE001 - recorded; the connection is dropped and retried
            return self._fail(exc, "poll")
        return "ok"

    def _idle(self) -> None:
        """Wait in IDLE until new mail, `stop`, or the re-issue time; renew the lease meanwhile."""
        client = self.client
        client.idle()
        started = renewed = time.monotonic()
        quick_empty = 0
        lease_lost = False
        while not self.stop.is_set() and time.monotonic() - started < self.idle_timeout:
            sliced = time.monotonic()
            responses = client.idle_check(timeout=IDLE_SLICE_S)
            if any(len(r) > 1 and r[1] in NEW_MAIL for r in responses):
                break
            if any(r and r[0] == b"BYE" for r in responses):
                raise ConnectionLost("the server ended the session (BYE)")
            # idle_check() swallows EOF: a readable socket that yields nothing, again and again, is closed
            quick_empty = quick_empty + 1 if not responses and time.monotonic() - sliced < IDLE_SLICE_S / 2 else 0
            if quick_empty >= 3:
                raise ConnectionLost("the server closed the connection")
            if time.monotonic() - renewed >= LEASE_RENEW_S:
                if not renew_lease(self.engine, self.state_id, self.owner):
                    lease_lost = True
                    break
                renewed = time.monotonic()
        client.idle_done()
        if lease_lost:
            raise LeaseLost("the folder's lease was taken by another poller")

    def _sleep(self) -> None:
        """No IDLE: wait the poll interval (in slices, renewing the lease) on the open connection."""
        deadline = time.monotonic() + self.poll_interval
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.stop.wait(min(left, LEASE_RENEW_S)):
                return
            if deadline - time.monotonic() > 0 and not renew_lease(self.engine, self.state_id, self.owner):
                raise LeaseLost("the folder's lease was taken by another poller")


def watch(engine: Engine, server_id: int, owner: str, stop: threading.Event, poll_interval: float = 60,
          idle_timeout: float = IDLE_TIMEOUT_S, *, batch_size: int = 100, after: str | None = None,
          backoff_initial: float = BACKOFF_INITIAL_S, backoff_max: float = BACKOFF_MAX_S) -> None:
    """Poll the server's poll folder until `stop` is set: IDLE where offered, else every `poll_interval`.

    Never raises: failures are logged and recorded in `imap_folder_state.last_error`, and the
    connection is made again after 1 s, 2 s, 4 s ... up to `backoff_max` (reset by a good pass).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    _Watcher(engine, server_id, owner, stop, poll_interval, idle_timeout, batch_size, after,
             (backoff_initial, backoff_max)).run()
