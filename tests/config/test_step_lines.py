"""Step lines of work done in a transaction are written when it commits, never when it rolls back, and a value
that only the commit knows (an id the INSERT assigns) is read then; addresses stay out of a line's words."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge.config import logs
from models.db import make_engine, session_scope

log = logging.getLogger("replybridge.test.steps")


def test_a_line_waits_for_its_commit_and_a_rollback_drops_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    engine = make_engine(f"sqlite:///{tmp_path}/steps.db")
    with session_scope(engine) as session:
        session.connection().execute(text("CREATE TABLE thing (id INTEGER PRIMARY KEY, name TEXT)"))
    made: dict[str, int] = {}
    with session_scope(engine) as session:
        logs.step_on_commit(session, log, "queued", outbound_id=lambda: made["id"], purpose="forward")
        made["id"] = session.connection().execute(text("INSERT INTO thing (name) VALUES ('a') RETURNING id")).scalar()
        assert caplog.records == []  # not before the commit
    [line] = [r for r in caplog.records if r.name == log.name]
    assert (line.step, line.outbound_id, line.purpose) == ("queued", made["id"], "forward")

    caplog.clear()
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.connection().execute(text("INSERT INTO thing (name) VALUES ('b')"))
        logs.step_on_commit(session, log, "queued", outbound_id=2)
        raise RuntimeError("undone")
    assert caplog.records == []
    engine.dispose()


def test_addresses_leave_a_reply_its_words() -> None:
    assert logs.without_addresses("550 5.1.1 <dana.kim@gmail.com>: Recipient address rejected: User unknown") == \
        "550 5.1.1 <address>: Recipient address rejected: User unknown"
    assert logs.without_addresses("554 5.2.252 SendAsDenied; ana@corp.example not allowed to send as "
                                  "jobs+1042@example.test") == "554 5.2.252 SendAsDenied; <address> not allowed to " \
                                                               "send as <address>"
    assert logs.without_addresses("451 4.3.0 Temporary failure, try again later") == \
        "451 4.3.0 Temporary failure, try again later"
