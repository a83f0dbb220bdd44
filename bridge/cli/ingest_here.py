"""`ingest` storing and routing in its own process: where no `serve` listens on the ingest socket, and for `--json`,
`--dry-run` and `--explain`, which print the route (bridge.cli.ingest_cmd decides)."""

from __future__ import annotations

import sys

import click
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge import json_views
from bridge.cli.common import db, emit_json, engine, safe_url
from bridge.cli.group import EX_TEMPFAIL
from bridge.errors import ConfigError
from bridge.inbound import pipeline, raw_store, triage
from bridge.inbound.parse import dedup_key
from models import InboundMessage, utcnow
from models.db import session_scope


def _explain(raw: bytes) -> dict[str, object]:
    """Parse, classify and route without storing anything."""
    key, mid = dedup_key(raw)
    with session_scope(engine()) as session:
        row = InboundMessage(dedup_key=key, message_id=mid, raw=raw, size=len(raw), source="pipe",
                             received_at=utcnow())
        outcome = pipeline.decide(session, row)
        session.rollback()
    d, c = outcome.decision, outcome.classification
    return {"message_id": mid, "from": outcome.parsed.from_addr, "subject": outcome.parsed.subject, "kind": c.kind,
            "classification": c.reason, "route": d.route, "employee_number": d.employee_number, "rule": d.rule,
            "reason": d.reason, "flagged": d.flagged, "flag_reason": d.flag_reason,
            "verdicts": [{"rule": v.rule, "matched": v.matched, "detail": v.detail} for v in d.verdicts],
            "parse_error": outcome.parsed.error}


def explain(inputs: list[tuple[str, bytes]], as_json: bool, several: bool) -> None:
    results = [_explain(raw) for _name, raw in inputs]
    if as_json:
        emit_json(results if several else results[0])
        return
    for r in results:
        click.echo(f"{r['kind']} -> {r['route']} (rule {r['rule']}): {r['reason']}")
        for v in r["verdicts"]:  # type: ignore[union-attr]
            click.echo(f"  {'MATCH' if v['matched'] else 'no   '} {v['rule']:<13} {v['detail']}")


def _routed(eng: Engine, stored: list[raw_store.Stored]) -> list[dict[str, object]]:
    """Route each stored message and read back what the command prints."""
    shown = []
    for item in stored:
        if pipeline.route_stored(eng, item.id) is None:  # stored is safe; the worker tries again
            click.echo(f"warning: message {item.id} is stored but routing failed; the worker tries again", err=True)
        with db() as session:
            row = triage.get_inbound(session, item.id)
            shown.append({**json_views.inbound_json(session, row), "duplicate": item.duplicate})
    return shown


def store(inputs: list[tuple[str, bytes]], as_json: bool, several: bool) -> None:
    """Store (exit 75 when storage fails), route, and print each message's route."""
    try:
        eng = engine()
        stored = raw_store.store_many(eng, [raw_store.Incoming(raw, "pipe") for _name, raw in inputs])
    except (SQLAlchemyError, ConfigError, OSError) as err:  # OSError: e.g. a SQLite file its user may not write
        click.echo(f"error: could not store the message in {safe_url()} ({type(err).__name__}); "
                   "exit 75 so the sender tries again", err=True)
        sys.exit(EX_TEMPFAIL)
    try:
        shown = _routed(eng, stored)
    except Exception as err:  # noqa: BLE001 - stored is what the sender waits for: exit 0, the worker routes it
        ids = ", ".join(f"#{item.id}" for item in stored)
        click.echo(f"warning: stored as {ids}, but could not route or show it ({type(err).__name__}); the worker "
                   "routes it", err=True)
        return
    if as_json:
        emit_json(shown if several else shown[0])
        return
    for m in shown:
        who = f"employee {m['employee_number']}" if m["employee_number"] is not None else m["route"]
        dup = " (already stored)" if m["duplicate"] else ""
        click.echo(f"#{m['id']} {m['kind']} -> {who}{dup}: {m['reason']}")
