"""Outbound throughput against two baselines measured in the same run (pytest -m benchmark).

- wire: a bare smtplib loop sending pre-rendered bytes over one connection, nothing stored;
- durable: the same loop plus the least a durable queue must do per message with raw sqlite3 in
  WAL mode: insert (commit), claim (commit), record the result and the attempt (commit).
The bridge does that and more (compose, conversations, signed IDs, leases, rate limits, hints).
Goals, as ratios so they hold on any machine, set just above what was measured (10-13x durable,
10-16x wire: about 7 ms a message of composing and ORM work, half of it the standard library's
header objects) so that a regression shows: at most 15x the durable baseline and 20x the wire.
"""

from __future__ import annotations

import smtplib
import sqlite3
import time
from pathlib import Path

import pytest
from sqlmodel import Session

from bridge.outbound import queue, sender
from tests.helpers.bridge import Bridge
from tests.helpers.setup_steps import add_account, add_alias

N = 200
GOAL_DURABLE, GOAL_WIRE = 15.0, 20.0


def durable_baseline(db: Path, host: str, port: int, raws: list[bytes]) -> float:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, raw BLOB, status TEXT, reply TEXT)")
    conn.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, m INTEGER, reply TEXT)")
    started = time.perf_counter()
    for raw in raws:
        with conn:
            conn.execute("INSERT INTO m (raw, status) VALUES (?, 'queued')", (raw,))
    with smtplib.SMTP(host, port) as smtp:
        for n, raw in enumerate(raws, start=1):
            with conn:
                conn.execute("UPDATE m SET status='sending' WHERE id=? AND status='queued'", (n,))
            smtp.sendmail("jobs+1042@example.test", [f"c{n}@example.org"], raw)
            with conn:
                conn.execute("UPDATE m SET status='sent', reply='250 OK' WHERE id=?", (n,))
                conn.execute("INSERT INTO a (m, reply) VALUES (?, '250 OK')", (n,))
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def wire_baseline(host: str, port: int, raws: list[bytes]) -> float:
    started = time.perf_counter()
    with smtplib.SMTP(host, port) as smtp:
        for n, raw in enumerate(raws):
            smtp.sendmail("jobs+1042@example.test", [f"c{n}@example.org"], raw)
    return time.perf_counter() - started


@pytest.mark.benchmark
def test_outbound_throughput(lite_bridge: Bridge, smtp_peer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    engine = lite_bridge.engine()

    started = time.perf_counter()
    with Session(engine) as session:
        for n in range(N):
            queue.queue(session, queue.Request(employee_number=1042, to=f"c{n}@example.org",
                                                     subject="Interview", text="Hello " * 50))
        session.commit()
    queued_s = time.perf_counter() - started
    assert sender.send_due(engine).sent == N
    bridge_s = time.perf_counter() - started

    raws = [r.data for r in peer.received]
    durable_s = durable_baseline(tmp_path / "baseline.db", peer.host, peer.port, raws)
    wire_s = wire_baseline(peer.host, peer.port, raws)
    print(f"\noutbound, {N} messages: bridge {bridge_s:.2f} s (queueing {queued_s:.2f} s); durable baseline "
          f"{durable_s:.2f} s -> {bridge_s / durable_s:.1f}x (goal <= {GOAL_DURABLE}x); wire {wire_s:.2f} s -> "
          f"{bridge_s / wire_s:.1f}x (goal <= {GOAL_WIRE}x)")
    assert bridge_s / durable_s <= GOAL_DURABLE
    assert bridge_s / wire_s <= GOAL_WIRE
