"""Draining a 10,000-message backlog from IMAP against a baseline measured in the same run (pytest -m benchmark).

Baseline: a bare imapclient loop that selects the folder, lists the UIDs and fetches `BODY.PEEK[]` in
batches of 100, storing nothing. The bridge does that and more per batch: dedup keys, one transaction
storing the batch and advancing the folder's progress, and flagging the batch \\Seen. Routing is
measured on its own (it is per message and the same for every source).
Goals, as ratios so they hold on any machine, set above what was measured (time 2.8-3.3x; peak memory
1.0x, because both peaks are imapclient parsing the answer to the one SEARCH listing 10,000 UIDs,
~230 bytes a UID): at most 4x the baseline's time and 1.5x its peak memory. Fetching every body at
once would put the peak above the backlog's size (16.7 MB, 7x).
"""

from __future__ import annotations

import ssl
import time
import tracemalloc
from collections.abc import Callable

import pytest
from imapclient import IMAPClient
from sqlalchemy import delete, update
from sqlmodel import Session

from bridge.inbound import pipeline
from bridge.inbound.imap.one_pass import poll_once
from models import ImapFolderState, InboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import deliver
from tests.helpers.messages import candidate
from tests.helpers.setup_steps import add_poller
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot

pytestmark = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")
N, BATCH, ROUTED_SAMPLE = 10_000, 100, 300
GOAL_TIME, GOAL_MEMORY = 4.0, 1.5


def baseline(server: Dovecot) -> int:
    """Fetch every message in batches and keep nothing; returns the bytes seen."""
    seen = 0
    client = IMAPClient("localhost", server.port, ssl=False, timeout=30)
    client.starttls(ssl.create_default_context(cafile=str(server.cafile)))  # the TLS the bridge pays for too
    client.login(server.user, server.password)
    client.select_folder("INBOX")
    uids = sorted(client.search(["UID", "1:*"]))
    for start in range(0, len(uids), BATCH):
        fetched = client.fetch(uids[start:start + BATCH], ["BODY.PEEK[]"])
        seen += sum(len(v[b"BODY[]"]) for v in fetched.values())
    client.logout()
    return seen


def measured(run: Callable[[], object]) -> tuple[float, int]:
    """(seconds without tracing, peak traced bytes of a second run)."""
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak


@pytest.mark.benchmark
def test_imap_drain_of_ten_thousand(lite_bridge: Bridge, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    server_id = add_poller(lite_bridge, dovecot, monkeypatch)
    engine = lite_bridge.engine()
    deliver(dovecot, [candidate(-1)])
    assert poll_once(engine, server_id, "bench").stored == 1  # imports and caches warm, the folder state exists
    padding = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 25  # ~2 KB a message
    for chunk in range(0, N, 1000):
        deliver(dovecot, [candidate(n, body=f"Monday works.\r\n{padding}") for n in range(chunk, chunk + 1000)])

    def bridge_drain() -> None:
        with Session(engine) as s:  # start over: nothing stored, nothing polled
            s.exec(delete(InboundMessage).where(InboundMessage.id > 1))
            s.exec(update(ImapFolderState).values(last_uid=1))
            s.commit()
        report = poll_once(engine, server_id, "bench", batch_size=BATCH, route=False)
        assert (report.stored, report.error) == (N, None)

    total = baseline(dovecot)
    base_s, base_peak = measured(lambda: baseline(dovecot))
    bridge_s, bridge_peak = measured(bridge_drain)

    started = time.perf_counter()
    routed = pipeline.finish_unrouted(engine, limit=ROUTED_SAMPLE)
    route_ms = (time.perf_counter() - started) / routed * 1000

    print(f"\nIMAP drain, {N} messages ({total / 1e6:.1f} MB) in batches of {BATCH}:"
          f"\n  bridge   {bridge_s:.2f} s ({N / bridge_s:.0f} msg/s), peak {bridge_peak / 1e6:.2f} MB"
          f"\n  baseline {base_s:.2f} s ({N / base_s:.0f} msg/s), peak {base_peak / 1e6:.2f} MB"
          f"\n  ratios: time {bridge_s / base_s:.1f}x (goal <= {GOAL_TIME}x), "
          f"peak memory {bridge_peak / base_peak:.1f}x (goal <= {GOAL_MEMORY}x); all bodies at once would be "
          f"{total / base_peak:.0f}x the baseline's peak"
          f"\n  routing afterwards: {route_ms:.1f} ms a message ({ROUTED_SAMPLE} routed) -> "
          f"{N * route_ms / 1000 / 60:.1f} min for the backlog")
    assert bridge_s / base_s <= GOAL_TIME
    assert bridge_peak / base_peak <= GOAL_MEMORY

