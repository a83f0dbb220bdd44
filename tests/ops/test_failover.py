"""Two `serve` on one PostgreSQL share the work; one is SIGKILLed under load and the other finishes it.

Load: 600 outbound messages through one account (an aiosmtpd peer), replies by SMTP to both receivers
(a client that gets no 250 tries the other, as an MTA would) and by IMAP into one catch-all folder that
both watch. The serve holding the folder's lease is killed mid-load. Goal (README, "Reliability"): all
work finished within 120 s of the kill, nothing lost, nothing stored or sent twice, except a message
whose SMTP transaction was cut by the kill (RFC 5321, section 6.1: its sender cannot know it arrived).
"""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Callable
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from bridge.outbound import queue
from models import ImapFolderState, InboundMessage, OutboundMessage
from models.db import session_scope
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import deliver
from tests.helpers.messages import reply
from tests.helpers.setup_steps import add_account, add_alias, add_poller
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot
from tests.servers.smtp_peers import SmtpPeer
from tests.servers.web import Served, start_serve, stop_serve

OUTBOUND = 600
SMTP_REPLIES = 120
IMAP_REPLIES = 40
TAKEOVER_GOAL_S = 120.0

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")]


def _message_id(raw: bytes) -> str:
    return str(BytesHeaderParser().parsebytes(raw)["Message-ID"]).strip()


class _SmtpLoad(threading.Thread):
    """Replies sent to the two receivers in turn; a message that gets no 250 goes to the other one."""

    def __init__(self, ports: list[int]) -> None:
        super().__init__(daemon=True)
        self.ports = ports
        self.accepted: list[str] = []

    def run(self) -> None:
        for n in range(SMTP_REPLIES):
            mid = f"<smtp-{n}@cand.example.org>"
            raw = reply(mid.strip("<>"), f"Cand {n} <cand{n}@example.org>", "jobs+1042@example.test")
            for attempt in range(20):
                port = self.ports[(n + attempt) % len(self.ports)]
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                        client.sendmail(f"cand{n}@example.org", ["jobs+1042@example.test"], raw.encode())
                    self.accepted.append(mid)
                    break
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.2)
            time.sleep(0.03)


def _holder_of_the_folder(bridge: Bridge, serves: list[Served]) -> Served:
    def holder() -> Served | None:
        with session_scope(bridge.engine()) as s:
            owner = s.exec(select(ImapFolderState.lease_owner)).first()
        return next((sv for sv in serves if owner and f":{sv.proc.pid}:" in owner), None)

    return serves[0].wait_for(holder, timeout=60, what="a serve to hold the catch-all folder")


def _left_over(engine, smtp_mids: list[str], imap_mids: list[str]) -> str:  # noqa: ANN001
    """What was not finished: for the failure message."""
    with session_scope(engine) as s:
        unsent = s.exec(select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.claimed_until)
                        .where(OutboundMessage.purpose == "message", OutboundMessage.status != "sent")).all()
        rows = {r.message_id: r for r in s.exec(select(InboundMessage)).all()}
        folder = s.exec(select(ImapFolderState)).all()
    missing = [m for m in smtp_mids + imap_mids if m not in rows]
    unrouted = [(m, rows[m].route_attempts, rows[m].route_error) for m in smtp_mids + imap_mids
                if m in rows and rows[m].routed_at is None]
    return (f"unsent: {unsent[:5]} ({len(unsent)}); not stored: {missing[:5]} ({len(missing)}); "
            f"unrouted: {unrouted[:5]} ({len(unrouted)}); "
            f"folder: {[(f.lease_owner, f.lease_until, f.last_uid, f.last_error) for f in folder]}")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_serves_one_killed_under_load_lose_nothing_and_send_nothing_twice(
        bridge: Bridge, smtp_peer: Callable[..., SmtpPeer], dovecot: Dovecot, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(bridge, peer.host, peer.port, monkeypatch)
    add_alias(bridge, delay_ms=15)  # the alias's rate limit spreads the 600 over about 9 s
    add_poller(bridge, dovecot, monkeypatch)
    bridge.run("employee", "set-delivery", "1042", "none")  # the replies are the load; handing them on is not
    engine = bridge.engine()
    serves = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        serves.append(start_serve(bridge, tmp_path / name))
    try:
        victim = _holder_of_the_folder(bridge, serves)
        survivor = next(sv for sv in serves if sv is not victim)
        with session_scope(engine) as s:
            for n in range(OUTBOUND):
                queue.queue(s, queue.Request(employee_number=1042, to=f"c{n}@example.org", subject=f"Interview {n}",
                                             text="Hello"))
        smtp_load = _SmtpLoad([victim.smtp_port, survivor.smtp_port])
        smtp_load.start()
        imap_mids = [f"<imap-{n}@cand.example.org>" for n in range(IMAP_REPLIES)]
        for mid in imap_mids[:IMAP_REPLIES // 2]:
            deliver(dovecot, [reply(mid.strip("<>"), "Imap Cand <imap@example.org>", "jobs+1042@example.test")
                              .encode()])
        victim.wait_for(lambda: len(peer.received) >= OUTBOUND // 4, timeout=60, what="a quarter of the mail sent")
        os.killpg(victim.proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.proc.wait()
        for mid in imap_mids[IMAP_REPLIES // 2:]:  # arrive while the folder's holder is dead
            deliver(dovecot, [reply(mid.strip("<>"), "Imap Cand <imap@example.org>", "jobs+1042@example.test")
                              .encode()])
        smtp_load.join(TAKEOVER_GOAL_S)

        def finished() -> bool:
            with session_scope(engine) as s:
                unsent = s.exec(select(func.count()).select_from(OutboundMessage)
                                .where(OutboundMessage.purpose == "message", OutboundMessage.status != "sent")).one()
                routed = set(s.exec(select(InboundMessage.message_id)
                                    .where(InboundMessage.routed_at.is_not(None))).all())
            return unsent == 0 and set(smtp_load.accepted) | set(imap_mids) <= routed

        try:
            survivor.wait_for(finished, timeout=TAKEOVER_GOAL_S, what="the survivor to finish the dead serve's work")
        except AssertionError as err:
            raise AssertionError(f"{_left_over(engine, smtp_load.accepted, imap_mids)}\n{err}") from None
        took = time.monotonic() - killed_at
    finally:
        for sv in serves:
            stop_serve(sv)

    assert len(smtp_load.accepted) == SMTP_REPLIES
    with session_scope(engine) as s:
        stored = Counter(s.exec(select(InboundMessage.message_id)).all())
        sent_ids = s.exec(select(OutboundMessage.message_id).where(OutboundMessage.purpose == "message")).all()
    assert [mid for mid in set(smtp_load.accepted) | set(imap_mids) if stored[mid] != 1] == []
    arrived = Counter(_message_id(r.data) for r in peer.received)
    assert [mid for mid in sent_ids if arrived[mid] == 0] == [], "lost"
    twice = [mid for mid, count in arrived.items() if count > 1]
    cut = {mid for mid in twice if peer.unfinished(next(r for r in peer.received if _message_id(r.data) == mid))}
    assert [mid for mid in twice if mid not in cut] == [], "sent twice although its transaction had completed"
    assert len(cut) <= 1  # the one lane the kill could interrupt
    assert took <= TAKEOVER_GOAL_S
    print(f"\nafter the kill: all work finished in {took:.1f} s; {len(peer.received)} SMTP deliveries of {OUTBOUND} "
          f"messages ({len(cut)} cut by the kill and sent again); {sum(stored.values())} inbound stored once each")
