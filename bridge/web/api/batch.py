"""The CLI's JSON objects for a whole page of rows, with one query per related table instead of per row.

`bridge.json_views.inbound_json` and `bridge.json_views.log_json` look up the employee, the candidate and a
forward's status row by row: right for one object, a query storm for a page of 200. Here the
employees and candidates of the page are loaded in one query each (the session's identity map then
answers `session.get`), and the forwards' statuses in one more, handed to the same builders.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, select

from bridge import json_views
from models import Candidate, Employee, InboundMessage, OutboundMessage


def _load_employees(session: Session, ids: set[int | None]) -> dict[int, Employee]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {e.id: e for e in session.exec(select(Employee).where(Employee.id.in_(wanted))).all()}


def _forward_states(session: Session, rows: Sequence[InboundMessage]) -> dict[int, str]:
    """`bridge.json_views.hand_off_state` for the rows whose forward sits in the Mail Log, in one query."""
    queued = [r.id for r in rows if r.delivery == "queued"]
    if not queued:
        return {}
    found = session.exec(select(OutboundMessage.inbound_id, OutboundMessage.status).where(
        OutboundMessage.inbound_id.in_(queued), OutboundMessage.purpose == "forward")
        .order_by(OutboundMessage.id)).all()
    states: dict[int, str] = {}
    for inbound_id, status in found:
        states.setdefault(inbound_id, f"forward {status}")
    return states


def inbound_items(session: Session, rows: Sequence[InboundMessage]) -> list[dict[str, object]]:
    """`inbound_json` per row, its look-ups answered from what was loaded for the whole page."""
    employees = _load_employees(session, {r.employee_id for r in rows})  # held: the identity map's refs are weak
    wanted = {r.candidate_id for r in rows if r.candidate_id is not None}
    candidates = session.exec(select(Candidate).where(Candidate.id.in_(wanted))).all() if wanted else []
    forwards = _forward_states(session, rows)
    items = [json_views.inbound_json(session, m, forwards.get(m.id, "queued") if m.delivery == "queued" else None)
             for m in rows]
    del employees, candidates
    return items


def mail_items(session: Session, rows: Sequence[OutboundMessage]) -> list[dict[str, object]]:
    """`log_json` per row; its `session.get(Employee, ...)` is answered from the identity map."""
    loaded = _load_employees(session, {r.employee_id for r in rows})  # held: the identity map keeps weak references
    items = [json_views.log_json(session, m) for m in rows]
    del loaded
    return items
