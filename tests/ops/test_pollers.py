"""A running serve's watchers follow the set-up: a new poll folder is watched, a changed one is watched in its
place, a cleared one is no longer watched, all without a restart (against Dovecot)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from bridge.ops.pollers import Pollers
from models import InboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import deliver
from tests.helpers.messages import candidate
from tests.helpers.setup_steps import add_poller
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot, start_dovecot

pytestmark = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")


def _stored(b: Bridge) -> int:
    with Session(b.engine()) as s:
        return s.exec(select(func.count()).select_from(InboundMessage)).one()


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Dovecot]:
    running = start_dovecot(tmp_path / "imap", extra_folders=("Careers",))
    yield running
    running.stop()


def test_watchers_follow_the_poll_folders_without_a_restart(lite_bridge: Bridge, server: Dovecot,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    pollers = Pollers(lite_bridge.engine(), stop, rescan_s=0.3).start()
    try:
        assert pollers.running == {}
        server_id = add_poller(lite_bridge, server, monkeypatch)  # added while running
        deliver(server, [candidate(1)])
        _wait(lambda: _stored(lite_bridge) == 1, 15, "the new poll folder watched")
        first = pollers.running[server_id].thread

        lite_bridge.run("imap", "set", "catchall", "--poll-folder", "Careers")
        _wait(lambda: not first.is_alive(), 15, "the old watcher stopped")
        deliver(server, [candidate(2)], "Careers")
        _wait(lambda: _stored(lite_bridge) == 2, 15, "the changed poll folder watched")
        deliver(server, [candidate(3)])  # INBOX is no longer watched
        time.sleep(2)
        assert _stored(lite_bridge) == 2

        second = pollers.running[server_id].thread
        lite_bridge.run("imap", "set", "catchall", "--poll-folder", "")
        _wait(lambda: not second.is_alive() and server_id not in pollers.running, 15, "polling stopped")
    finally:
        stop.set()
        pollers.join(10)
    assert all(not r.thread.is_alive() for r in pollers.running.values())
