"""The lease keeper: renews what it holds while its holder lives, stops at `done`, and survives a failing
renewal (the lease then runs out and another process takes the work)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from bridge import leases

SHORT = dt.timedelta(seconds=0.3)  # renewed every 0.1 s


def test_renews_what_it_holds_until_done() -> None:
    renewed: list[list[int]] = []
    with leases.Keeper(renewed.append, "things", SHORT) as held:
        held.add([3, 1, 2])
        time.sleep(0.35)
        held.done(2)
        seen = len(renewed)
        time.sleep(0.35)
    assert renewed[0] == [1, 2, 3] and len(renewed) >= 4
    assert all(batch == [1, 3] for batch in renewed[seen + 1:])  # at most one renewal was already under way


def test_no_renewal_lands_after_done_returns() -> None:
    """`done` waits for a renewal in flight: what the holder records next is never overwritten."""
    started, finish = threading.Event(), threading.Event()
    log: list[str] = []

    def slow_renew(ids: list[int]) -> None:
        started.set()
        finish.wait(2)
        log.append("renewed")

    with leases.Keeper(slow_renew, "things", SHORT) as held:
        held.add([7])
        assert started.wait(2)
        threading.Timer(0.2, finish.set).start()
        held.done(7)
        log.append("recorded")
    assert log[:2] == ["renewed", "recorded"]


def test_a_failing_renewal_is_logged_and_the_keeper_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def failing(ids: list[int]) -> None:
        calls.append(len(ids))
        raise RuntimeError("database down")

    with leases.Keeper(failing, "things", SHORT) as held:
        held.add([1])
        time.sleep(0.35)
    assert len(calls) >= 2
    assert "could not renew the leases on 1 things" in caplog.text


def test_every_claimed_kind_uses_the_one_lease() -> None:
    from bridge.inbound.hand_off import imap as hand_off_imap
    from bridge.ops.webhooks import dispatch
    from bridge.outbound import claims, sent_folder

    for module in (claims, sent_folder, hand_off_imap, dispatch):
        assert module.LEASE == leases.LEASE == dt.timedelta(seconds=60), module.__name__
