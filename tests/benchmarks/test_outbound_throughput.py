"""Outbound, queued to sent, against bare smtplib in the same run (pytest -m benchmark).

Baseline (the issue's): smtplib reusing one connection to the same peer, sending the very bytes the
bridge sent, nothing stored. The bridge queues each message (composing it, its conversation, its
Mail Log entry), then sends the queue with the Mail Log durable; a second run files each sent
message in a real Dovecot's Sent folder too. Goals: at least half the baseline's rate, and 0.3 of it
with the Sent copies.
"""

from __future__ import annotations

import smtplib
import time

import pytest
from sqlmodel import Session

from bridge.outbound import queue, sender, sent_folder
from tests.benchmarks import table
from tests.helpers.bridge import Bridge
from tests.helpers.setup_steps import add_account, add_alias, add_imap
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot

N = 300
GOAL, GOAL_WITH_SENT = 0.5, 0.3


def wire_baseline(host: str, port: int, raws: list[bytes]) -> float:
    started = time.perf_counter()
    with smtplib.SMTP(host, port) as smtp:
        for n, raw in enumerate(raws):
            smtp.sendmail("jobs+1042@example.test", [f"c{n}@example.org"], raw)
    return time.perf_counter() - started


def queued_to_sent(bridge: Bridge, offset: int, with_sent: bool) -> float:
    """Seconds from queueing N messages to all sent (and, `with_sent`, all filed in Sent)."""
    engine = bridge.engine()
    started = time.perf_counter()
    with Session(engine) as session:
        for n in range(offset, offset + N):
            queue.queue(session, queue.Request(employee_number=1042, to=f"c{n}@example.org",
                                               subject="Interview", text="Hello " * 50))
        session.commit()
    assert sender.send_due(engine).sent == N
    if with_sent:
        assert sent_folder.run(engine) == N
    return time.perf_counter() - started


@pytest.mark.benchmark
@pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")
def test_outbound_keeps_half_the_pace_of_bare_smtplib(lite_bridge: Bridge, smtp_peer, dovecot: Dovecot,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    ours_s = queued_to_sent(lite_bridge, 0, with_sent=False)
    raws = [r.data for r in peer.received]
    wire_s = wire_baseline(peer.host, peer.port, raws)

    add_imap(lite_bridge, dovecot, monkeypatch)
    lite_bridge.run("alias", "set", "Ana jobs", "--imap", "mailbox")  # the same alias, now with its Sent folder
    with_sent_s = queued_to_sent(lite_bridge, N, with_sent=True)
    assert len(dovecot.folder_messages("Sent")) == N

    rate, ours, filed = N / wire_s, N / ours_s, N / with_sent_s
    print(f"\noutbound, {N} messages: bare smtplib {rate:,.0f} msg/s; replybridge {ours:,.0f} msg/s "
          f"({ours / rate:.2f}x, goal >= {GOAL}x), with Sent copies {filed:,.0f} msg/s "
          f"({filed / rate:.2f}x, goal >= {GOAL_WITH_SENT}x)")
    met = table.record("outbound, queued to sent, Mail Log durable", f"bare smtplib reusing one connection: "
                       f"{rate:,.0f} msg/s", f"{ours:,.0f} msg/s", f"{ours / rate:.2f}x", f">= {GOAL}x",
                       ours / rate >= GOAL)
    met &= table.record("outbound with Sent copies (Dovecot)", "the same", f"{filed:,.0f} msg/s",
                        f"{filed / rate:.2f}x", f">= {GOAL_WITH_SENT}x", filed / rate >= GOAL_WITH_SENT)
    assert met
