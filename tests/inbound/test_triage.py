"""Triage under concurrency: of two people acting on one unassigned message, exactly one wins."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from bridge.errors import InputError
from bridge.inbound import triage
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import ingest_json
from tests.helpers.messages import reply


def test_second_of_two_racing_assignments_is_refused(bridge: Bridge) -> None:
    bridge.run("employee", "add", "--number", "2001", "--name", "Ben Stone", "--email", "ben@example.test")
    got = ingest_json(bridge, reply("x1@example.org", "stranger@example.org", "jobs@example.test", subject="Hi"))
    assert got["route"] == "unassigned"
    engine = bridge.engine()
    with Session(engine, expire_on_commit=False) as first, Session(engine, expire_on_commit=False) as second:
        # both pages were loaded while the message was open (the second session holds a stale object)
        assert triage.get_inbound(first, got["id"]).triage == "open"
        assert triage.get_inbound(second, got["id"]).triage == "open"
        second.commit()
        triage.assign(first, got["id"], 1042)
        first.commit()
        with pytest.raises(InputError, match="not an open unassigned message"):
            triage.assign(second, got["id"], 2001)
        second.rollback()
    [row] = bridge.json("messages", "list")
    assert (row["employee_number"], row["triage"]) == (1042, "assigned")
