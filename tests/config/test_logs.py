"""Log lines: text by default, JSON objects with the step's ids as fields when asked; aiosmtpd's line per
connection off unless asked."""

from __future__ import annotations

import json
import logging

import pytest

from bridge.config import logs


@pytest.fixture(autouse=True)
def restore_logging() -> None:
    root, mail = logging.getLogger(), logging.getLogger("mail.log")
    saved = (list(root.handlers), root.level, mail.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    mail.setLevel(saved[2])


def test_a_step_as_text_ends_with_its_ids(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("REPLYBRIDGE_LOG_FORMAT", raising=False)
    logs.configure()
    logs.step(logging.getLogger("replybridge.test"), "routed", inbound_id=7, rule="numbered_address", employee=None)
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO replybridge.test: routed inbound_id=7 rule=numbered_address"), line


def test_a_step_as_json_carries_its_ids_as_fields(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("REPLYBRIDGE_LOG_FORMAT", "json")
    logs.configure()
    logs.step(logging.getLogger("replybridge.test"), "sent", outbound_id=12, message_id="<a@b>", reply="250 ok")
    logging.getLogger("replybridge.test").warning("plain line with ünïcode")
    first, second = (json.loads(line) for line in capsys.readouterr().err.strip().splitlines())
    assert {k: first[k] for k in ("level", "logger", "step", "outbound_id", "message_id", "reply")} == {
        "level": "INFO", "logger": "replybridge.test", "step": "sent", "outbound_id": 12, "message_id": "<a@b>",
        "reply": "250 ok"}
    assert "time" in first and "pid" in first
    assert second["message"] == "plain line with ünïcode" and "step" not in second


def test_aiosmtpd_connection_lines_are_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    logs.configure()
    assert not logging.getLogger("mail.log").isEnabledFor(logging.INFO)
    monkeypatch.setenv("REPLYBRIDGE_SMTP_CONNECTION_LOG", "true")
    logs.configure()
    assert logging.getLogger("mail.log").isEnabledFor(logging.INFO)
