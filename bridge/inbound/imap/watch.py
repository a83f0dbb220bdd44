"""Watching a polled folder: one connection, IDLE where the server offers it (polling otherwise).

The loop (Watcher.run): take the lease, connect when needed, one pass (bridge.inbound.imap.one_pass.drain),
then wait in IDLE (renewing the lease) until new mail, the re-issue time or `stop`. Failures are recorded
on the folder's state and the connection is made again with exponential backoff; a watcher never dies of
one bad pass. While it waits in IDLE between passes its folder's IDLE gauge is 1 (bridge.metrics); polling,
failing or stopped, 0.
"""

from __future__ import annotations

import imaplib
import logging
import threading
import time

from imapclient import IMAPClient
from sqlalchemy.engine import Engine

from bridge import metrics
from bridge.accounts.imap_servers import AfterFetch
from bridge.accounts.oauth.tokens import bearer_for
from bridge.inbound.imap.folder_state import (
    LEASE_RENEW_S,
    LeaseLost,
    folder_state_id,
    record_outcome,
    release_lease,
    renew_lease,
    take_lease,
)
from bridge.inbound.imap.one_pass import (
    NEW_MAIL,
    ConnectionLost,
    PollReport,
    describe,
    drain,
    imap_stage,
    keepalive,
    news_since_pass,
    note_connect_failure,
    poll_target,
    pop_new_mail,
)
from bridge.net.connections import StageError, logout_quietly, open_imap
from bridge.ops.error_reports import records
from models import ImapServer

log = logging.getLogger(__name__)

IDLE_SLICE_S = 1.0  # idle_check() in slices this long, so `stop` is honoured within about a second
# Each IDLE ends after this long and the folder is looked at again: a change the server announced in a
# way we missed waits no longer than this (RFC 2177 would allow 29 minutes).
IDLE_TIMEOUT_S = 30.0
BACKOFF_INITIAL_S, BACKOFF_MAX_S = 1.0, 300.0
STANDBY_S = 15.0  # how often a watcher whose folder another one holds looks whether that one died


class Watcher:
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
        self.idle_gauge: tuple[str, str] | None = None  # (server, folder) whose IDLE gauge this watcher set to 1

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
                    self.stop.wait(min(self.poll_interval, STANDBY_S))
                else:
                    backoff = self.backoff_initial
        finally:
            self._drop(release=True, record=False)

    def _idling(self, now: bool) -> None:
        """The folder's IDLE gauge: 1 from the first IDLE on, 0 once the watcher polls, fails or stops."""
        if now and self.idle_gauge is None and self.server is not None:
            self.idle_gauge = (self.server.name, self.server.poll_folder)
            metrics.idling(*self.idle_gauge, now=True)
        elif not now and self.idle_gauge is not None:
            metrics.idling(*self.idle_gauge, now=False)
            self.idle_gauge = None

    def _drop(self, release: bool, record: bool = False) -> None:
        self._idling(False)
        logout_quietly(self.client)
        self.client = None
        if release and self.state_id is not None:
            release_lease(self.engine, self.state_id, self.owner, record=record)

    def _fail(self, exc: BaseException, stage: str) -> str:
        error = describe(self.server, exc, stage) if self.server is not None else str(exc)
        log.warning("watching IMAP server %s: %s", self.server_id, error)
        if self.server is not None:
            note_connect_failure(self.engine, self.server, self.client, exc, error)
        if self.state_id is not None:
            record_outcome(self.engine, self.state_id, self.owner, error)
        return "failed"

    def _cycle(self) -> str:
        """Lease, connect when needed, one pass, then wait (IDLE or sleep). Returns ok | failed | standby."""
        if self.client is None:  # settings are read again on every reconnect
            target = poll_target(self.engine, self.server_id, self.after)
            if isinstance(target, str):
                log.warning("not watching IMAP server %s: %s", self.server_id, target)
                return "standby"
            self.server, self.action = target
            self.state_id = folder_state_id(self.engine, self.server.id, self.server.poll_folder)
        if take_lease(self.engine, self.state_id, self.owner) is not None:
            return "standby"
        try:
            if self.client is None:
                self.client = open_imap(self.server, bearer_for(self.engine, self.server))
                records.poller_ok(self.engine, self.server.name)  # error reports: it connects
                keepalive(self.client)
            report = PollReport(idle_supported=self.client.has_capability("IDLE"))
            problems = drain(self.engine, self.client, self.server.poll_folder, self.state_id, self.owner,
                              self.batch_size, self.action, report, stop=self.stop)
            report.error = "; ".join(problems) or None
            record_outcome(self.engine, self.state_id, self.owner, report.error)
            if report.fetched or pop_new_mail(self.client) or news_since_pass(self.client):
                return "ok"  # mail may have arrived during the pass: look again before waiting
            self._idling(report.idle_supported)
            if report.idle_supported:
                with imap_stage("idle"):
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
        if enter_idle(client):  # the server had news as IDLE began: look at the folder again now
            client.idle_done()
            return
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
    Watcher(engine, server_id, owner, stop, poll_interval, idle_timeout, batch_size, after,
             (backoff_initial, backoff_max)).run()


def enter_idle(client: IMAPClient) -> bool:
    """Start IDLE; True when the server already had news as it began.

    A server may send an untagged EXISTS before its `+ idling` continuation (imapclient's `idle()` then
    raises), or right after it in the same packet: imaplib then holds that line in its read buffer, where
    polling the socket (idle_check) cannot see it, and the message would wait for the next change.
    """
    imap = client._imap  # noqa: SLF001 - imapclient's idle() would raise on a line before the continuation
    tag = client._idle_tag = imap._command("IDLE")  # noqa: SLF001 - as imapclient's own idle() does
    news = False
    while imap._get_response() is not None:  # noqa: SLF001 - a line before the continuation
        if imap.tagged_commands.get(tag):  # the server answered IDLE itself: refused
            typ, data = imap.tagged_commands.pop(tag)
            raise imaplib.IMAP4.error(f"IDLE refused: {typ} {data!r}")
        news = True  # an untagged update: imaplib files it aside (pop_new_mail reads it)
    return news or pop_new_mail(client) or _buffered(client)


def _buffered(client: IMAPClient) -> bool:
    """Has imaplib read more than the continuation? Buffered bytes come back from peek() without a read;
    with the socket non-blocking, an empty buffer costs nothing either."""
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        return bool(client._imap.file.peek(1))  # noqa: SLF001 - the reader imaplib buffers lines in
    except OSError:  # nothing buffered and nothing on the socket (SSL says so by raising)
        return False
    finally:
        sock.settimeout(timeout)
