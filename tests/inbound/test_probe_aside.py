"""A probe of ours that routing cannot place is dismissed at once: `test loop` reports where it went, and it
never waits among the Unassigned messages people work through."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.inbound.smtp_receiver import Receiver, ReceiverConfig
from tests.helpers.bridge import Bridge
from tests.helpers.ports import free_port
from tests.helpers.setup_steps import add_account


@pytest.fixture
def receiver(lite_bridge: Bridge) -> Iterator[Receiver]:
    running = Receiver(lite_bridge.engine(), ReceiverConfig(port=free_port()))
    running.start()
    yield running
    running.stop()


def test_a_probe_routed_to_unassigned_is_dismissed_at_once(lite_bridge: Bridge, receiver: Receiver,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    add_account(lite_bridge, receiver.hostname, receiver.port, monkeypatch, name="to-receiver")
    lite_bridge.run("employee", "add", "--number", "7", "--name", "Former", "--email", "former@example.test",
                    "--inactive")  # an inactive employee's number routes to Unassigned
    lite_bridge.run("alias", "add", "--employee", "7", "--description", "Former jobs", "--display-name", "Former",
                    "--from", "former@example.test", "--smtp", "to-receiver")
    out = lite_bridge.run("test", "loop", "Former jobs", "--timeout", "10", ok=False).stdout
    assert "Broken leg: arrived but routed wrong" in out and "routed to unassigned" in out
    assert lite_bridge.json("unassigned", "list") == []
    [stored] = lite_bridge.json("messages", "list")
    assert stored["route"] == "unassigned" and stored["subject"].startswith("replybridge loop test")

    ordinary = (b"From: cand@example.org\r\nTo: jobs+7@example.test\r\nSubject: Hello\r\n"
                b"Message-ID: <not-a-probe@example.org>\r\n\r\nHi\r\n")
    lite_bridge.run("ingest", "-", stdin=ordinary.decode())
    [waiting] = lite_bridge.json("unassigned", "list")  # the step leaves everyone else's mail alone
    assert waiting["subject"] == "Hello"
