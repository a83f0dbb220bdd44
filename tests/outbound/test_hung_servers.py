"""One mail server must not hold up the others: an SMTP server that accepts the connection and never says
a word costs its own account's mail a timeout, while every other account's mail goes out (SQLite and
PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from bridge.outbound import sender
from tests.helpers.bridge import Bridge
from tests.helpers.setup_steps import add_account
from tests.servers.smtp_peers import SmtpPeer

HUNG_TIMEOUT_S = 20.0  # the hung account's timeout: the others' mail must not wait for it


def _employee_with_alias(b: Bridge, number: int, smtp: str) -> None:
    b.run("employee", "add", "--number", str(number), "--name", f"E{number}", "--email", f"e{number}@example.test")
    b.run("alias", "add", "--employee", str(number), "--description", f"E{number} jobs", "--display-name",
          f"E{number}", "--from", f"e{number}@example.test", "--smtp", smtp)


def _queue(b: Bridge, number: int, count: int) -> None:
    for n in range(count):
        b.run("send", "--employee", str(number), "--to", f"c{number}-{n}@example.org", "--subject", "Interview",
              "--body", "Hello")


def test_a_hung_server_costs_the_other_accounts_nothing(bridge: Bridge, smtp_peer: Callable[..., SmtpPeer],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    hung, working = smtp_peer("silent"), smtp_peer("accept")
    add_account(bridge, hung.host, hung.port, monkeypatch, name="hung", timeout=HUNG_TIMEOUT_S)
    add_account(bridge, working.host, working.port, monkeypatch, name="working")
    _employee_with_alias(bridge, 2001, "hung")
    _employee_with_alias(bridge, 2002, "working")
    bridge.run("settings", "set", "retry_delays", "60,300")  # the deferred mail is not due again in this run
    _queue(bridge, 2001, 5)  # queued first: the oldest mail goes through the hung server
    _queue(bridge, 2002, 20)
    result: list[sender.SendReport] = []
    worker = threading.Thread(target=lambda: result.append(sender.send_due(bridge.engine())))
    started = time.monotonic()
    worker.start()
    while len(working.received) < 20 and time.monotonic() - started < HUNG_TIMEOUT_S - 2:
        time.sleep(0.1)
    took = time.monotonic() - started
    assert len(working.received) == 20, f"{len(working.received)} of 20 arrived while the hung server held its lane"
    assert took < HUNG_TIMEOUT_S - 2 and worker.is_alive()  # the hung lane was still waiting meanwhile
    worker.join(HUNG_TIMEOUT_S * 2)
    assert not worker.is_alive()
    [report] = result
    assert (report.sent, report.deferred) == (20, 5)  # one timeout deferred the hung account's whole batch
    assert hung.connections == 1
    log = bridge.json("log")
    assert sorted({e["status"] for e in log if e["smtp_account"] == "hung"}) == ["deferred"]
    assert all("timeout" in e["last_reply"].lower() or "no answer" in e["hint"].lower()
               for e in log if e["smtp_account"] == "hung")
