"""Claims on outbound mail: a live worker keeps its claims however slow its server, a dead one's claims are
taken over once their lease runs out, and no message is sent twice (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from bridge.outbound import claims, sender
from tests.helpers.bridge import Bridge
from tests.helpers.setup_steps import add_account, add_alias, send
from tests.servers.smtp_peers import SmtpPeer


def test_a_slow_worker_keeps_its_claims_and_nothing_goes_twice(bridge: Bridge, smtp_peer: Callable[..., SmtpPeer],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claims, "LEASE", dt.timedelta(seconds=1.5))  # renewed every 0.5 s while held
    peer = smtp_peer("accept")
    add_account(bridge, peer.host, peer.port, monkeypatch)
    add_alias(bridge)
    for n in range(8):
        send(bridge, to=f"c{n}@example.org")
    transmit = sender.transmit

    def slow(*args: object, **kwargs: object) -> object:
        time.sleep(0.5)  # eight messages take 4 s: well past the lease, unless it is renewed
        return transmit(*args, **kwargs)

    monkeypatch.setattr(sender, "transmit", slow)
    first = threading.Thread(target=sender.send_due, args=(bridge.engine(),))
    first.start()
    time.sleep(2.0)  # the first worker's claims are older than their lease now
    second = sender.send_due(bridge.engine())  # a second worker looks for due mail meanwhile
    first.join(30)
    assert second.sent == 0, "the second worker took claims the first still held"
    assert sorted(r.rcpt_tos[0] for r in peer.received) == sorted(f"c{n}@example.org" for n in range(8))


def test_a_dead_workers_claims_are_taken_over_when_their_lease_runs_out(
        bridge: Bridge, smtp_peer: Callable[..., SmtpPeer], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claims, "LEASE", dt.timedelta(seconds=1))
    peer = smtp_peer("accept")
    add_account(bridge, peer.host, peer.port, monkeypatch)
    add_alias(bridge)
    send(bridge)
    assert len(claims.claim_batch(bridge.engine())) == 1  # claimed, then the worker dies: no renewal
    assert sender.send_due(bridge.engine()).sent == 0  # its lease still holds
    time.sleep(1.2)
    assert sender.send_due(bridge.engine()).sent == 1 and len(peer.received) == 1


def test_a_busy_accounts_backlog_does_not_hide_the_others_mail(bridge: Bridge, smtp_peer: Callable[..., SmtpPeer],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The busy account is left out in the query itself: 200 of its messages due first hide nothing."""
    peer = smtp_peer("accept")
    for n, name in ((2001, "busy"), (2002, "free")):
        add_account(bridge, peer.host, peer.port, monkeypatch, name=name)
        bridge.run("employee", "add", "--number", str(n), "--name", f"E{n}", "--email", f"e{n}@example.test")
        bridge.run("alias", "add", "--employee", str(n), "--description", f"E{n}", "--display-name", f"E{n}",
                   "--from", f"e{n}@example.test", "--smtp", name)
    for n in range(200):
        bridge.run("send", "--employee", "2001", "--to", f"b{n}@example.org", "--subject", "S", "--body", "B")
    bridge.run("send", "--employee", "2002", "--to", "f@example.org", "--subject", "S", "--body", "B")
    with bridge.engine().connect() as conn:
        busy_id = conn.execute(text("SELECT id FROM smtp_account WHERE name = 'busy'")).scalar_one()
    claimed = claims.claim_batch(bridge.engine(), busy=frozenset({busy_id}))
    assert [c.to_addr for c in claimed] == ["f@example.org"]
