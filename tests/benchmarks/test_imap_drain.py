"""Draining 10,000 messages waiting in Dovecot: `replybridge worker --once` as a process against a naive
poller measured in the same run (pytest -m benchmark).

The naive poller is the issue's: for each UID, fetch that one message, parse it with the standard
library, insert it into SQLite and commit, then flag it \\Seen. The bridge's pass stores, routes
(all 10,000, with their reply texts) and flags them. Goals: at least five times the naive rate, every
message routed, a peak of at most 100 MB (the process's resident set, by /usr/bin/time).
"""

from __future__ import annotations

import email
import os
import sqlite3
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imapclient import SEEN, IMAPClient
from sqlalchemy import func
from sqlmodel import Session, select

from models import InboundMessage
from tests.benchmarks import table
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import deliver
from tests.helpers.messages import candidate
from tests.helpers.setup_steps import PW_ENV, add_poller
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot

pytestmark = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")
N = 10_000
GOAL_RATIO, GOAL_PEAK_MB = 5.0, 100.0
TIME = Path("/usr/bin/time")


def naive_poller(server: Dovecot, db: Path) -> int:
    """The issue's baseline, over the TLS the bridge uses too; returns the messages it stored."""
    store = sqlite3.connect(db)
    store.execute("CREATE TABLE IF NOT EXISTS message (id INTEGER PRIMARY KEY, message_id TEXT, raw BLOB)")
    client = IMAPClient("localhost", server.port, ssl=False, timeout=30)
    client.starttls(ssl.create_default_context(cafile=str(server.cafile)))
    client.login(server.user, server.password)
    client.select_folder("INBOX")
    uids = client.search(["UNSEEN"])
    for uid in uids:
        raw = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
        parsed = email.message_from_bytes(raw)
        with store:
            store.execute("INSERT INTO message (message_id, raw) VALUES (?, ?)", (parsed["Message-ID"], raw))
        client.add_flags([uid], [SEEN])
    client.logout()
    store.close()
    return len(uids)


def mark_unseen(server: Dovecot) -> None:
    client = IMAPClient("localhost", server.port, ssl=False, timeout=30)
    client.login(server.user, server.password)
    client.select_folder("INBOX")
    client.remove_flags(client.search(["ALL"]), [SEEN])
    client.logout()


def worker_once(env_password: str) -> tuple[float, float | None]:
    """(seconds, peak MB) of `replybridge worker --once` as a process, as cron or an admin runs it, in the
    bridge fixture's folder (its environment names the database)."""
    env = {**os.environ, PW_ENV: env_password}
    command = [str(Path(sys.executable).with_name("replybridge")), "worker", "--once"]
    timed = [str(TIME), "-f", "%M", *command] if TIME.exists() else command
    started = time.perf_counter()
    done = subprocess.run(timed, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    return seconds, int(done.stderr.split()[-1]) / 1024 if TIME.exists() else None


@pytest.mark.benchmark
def test_worker_drains_imap_five_times_faster_than_a_naive_poller(lite_bridge: Bridge, dovecot: Dovecot,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    add_poller(lite_bridge, dovecot, monkeypatch)
    padding = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 25  # ~2 KB a message
    for chunk in range(0, N, 1000):
        deliver(dovecot, [candidate(n, body=f"Monday works.\r\n{padding}") for n in range(chunk, chunk + 1000)])

    started = time.perf_counter()
    assert naive_poller(dovecot, tmp_path / "naive.db") == N
    naive_s = time.perf_counter() - started
    mark_unseen(dovecot)

    ours_s, peak = worker_once(dovecot.password)
    with Session(lite_bridge.engine()) as s:
        stored = s.exec(select(func.count()).select_from(InboundMessage)).one()
        routed = s.exec(select(func.count()).select_from(InboundMessage)
                        .where(InboundMessage.routed_at.is_not(None))).one()
    assert (stored, routed) == (N, N)
    assert dovecot.folder_flags("INBOX")[-1] == (b"\\Seen",)

    ratio = naive_s / ours_s
    memory = f"{peak:.0f} MB peak" if peak is not None else "peak not measured (no /usr/bin/time)"
    print(f"\nIMAP drain of {N:,}: naive poller {N / naive_s:,.0f} msg/s, worker --once {N / ours_s:,.0f} msg/s "
          f"(all routed), {ratio:.1f}x (goal >= {GOAL_RATIO}x), {memory} (goal <= {GOAL_PEAK_MB:.0f} MB)")
    met_rate = table.record(f"IMAP drain, {N:,} waiting in Dovecot, `worker --once` as a process",
                            f"a naive loop (fetch one UID, stdlib parse, SQLite insert + commit, flag \\Seen): "
                            f"{N / naive_s:,.0f} msg/s", f"{N / ours_s:,.0f} msg/s, all routed, {memory}",
                            f"{ratio:.1f}x", f">= {GOAL_RATIO:.0f}x, all routed, peak <= {GOAL_PEAK_MB:.0f} MB",
                            ratio >= GOAL_RATIO and (peak is None or peak <= GOAL_PEAK_MB))
    assert met_rate
