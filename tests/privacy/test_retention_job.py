"""The daily retention job: the scheduler of `serve` and `replybridge worker` has it, it runs the same
retention as the command, says what it removed in one log line, and a failing run is logged, not raised."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bridge.ops import schedule
from models import AuditEvent, RetentionTally
from models.db import make_engine
from tests.helpers import aged_rows as aged
from tests.helpers.bridge import Bridge


def test_the_scheduler_runs_retention_daily_from_a_few_minutes_on(bridge: Bridge) -> None:
    engine = bridge.engine()
    before = dt.datetime.now(dt.UTC)
    job = schedule.scheduler(engine, 5.0).get_job("retention")
    assert job is not None and job.func is schedule.safe_retention and job.args == (engine,)
    assert job.trigger.interval == dt.timedelta(days=1) and job.max_instances == 1
    assert before + dt.timedelta(minutes=4) < job.next_run_time < before + dt.timedelta(minutes=6)


def test_the_job_removes_and_says_so_in_one_line(bridge: Bridge, caplog: pytest.LogCaptureFixture) -> None:
    bridge.run("settings", "set", "keep_audit_days", "90")
    bridge.run("settings", "set", "keep_mail_log_days", "60")
    engine = bridge.engine()
    aged.audit_entries(engine, 100, 3, "view_raw")
    aged.outbound(engine, 70)
    with caplog.at_level(logging.INFO, logger="replybridge.worker"):
        schedule.safe_retention(engine)
    lines = [r.getMessage() for r in caplog.records if r.name == "replybridge.worker"]
    assert lines == ["retention removed: outbound 1, audit 3"]
    with Session(engine) as s:
        assert sum(t.count for t in s.exec(select(RetentionTally))) == 4
        [entry] = s.exec(select(AuditEvent).where(AuditEvent.action == "retention")).all()
    assert entry.actor == "system" and entry.detail == "outbound 1, audit 3"

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="replybridge.worker"):
        schedule.safe_retention(engine)  # nothing left: no line
    assert [r for r in caplog.records if r.name == "replybridge.worker"] == []


def test_a_failing_run_is_logged_and_the_job_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/no-such-directory/rb.db")
    with caplog.at_level(logging.INFO, logger="replybridge.worker"):
        schedule.safe_retention(engine)  # does not raise: the scheduler's thread lives on
    assert [r.getMessage() for r in caplog.records if r.name == "replybridge.worker"] == \
        ["retention run failed; trying again at the next run"]
    engine.dispose()
