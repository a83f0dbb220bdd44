"""Inbound commands: ingest (MTA pipes, imports), the message lists, and Unassigned triage."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from bridge import json_views
from bridge.cli.common import db, emit_json, engine, safe_url
from bridge.errors import ConfigError, InputError
from bridge.inbound import pipeline, raw_store, triage
from bridge.inbound.parse import dedup_key
from bridge.inbound.raw_store import MAX_MESSAGE_BYTES
from models import Employee, InboundMessage, utcnow
from models.db import session_scope

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again


def _read_inputs(files: tuple[str, ...]) -> list[tuple[str, bytes]]:
    inputs = []
    for name in files or ("-",):
        try:
            if name == "-":
                raw = sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)
            else:
                with Path(name).open("rb") as f:
                    raw = f.read(MAX_MESSAGE_BYTES + 1)
        except OSError as err:
            raise InputError(f"cannot read {name}: {err.strerror}") from None
        if len(raw) > MAX_MESSAGE_BYTES:
            raise InputError(f"{'standard input' if name == '-' else name} is larger than {MAX_MESSAGE_BYTES:,} bytes "
                             "(25 MiB), the most any source takes; nothing was stored")
        if not raw.strip():
            raise InputError(f"{'standard input' if name == '-' else name} holds no message")
        inputs.append((name, raw))
    return inputs


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


@click.command()
@click.argument("files", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One object per message; a list for several files.")
@click.option("--dry-run", is_flag=True, help="Store nothing.")
@click.option("--explain", is_flag=True, help="Print the decision and each rule's verdict.")
def ingest(files: tuple[str, ...], as_json: bool, dry_run: bool, explain: bool) -> None:
    """Store and route raw messages from files or standard input (`-`), e.g. from an MTA pipe.

    Exit 0 once every message is stored; 75 (try again later) when storage fails, so the MTA keeps it.
    """
    inputs = _read_inputs(files)
    if dry_run or explain:
        if not dry_run:
            raise click.UsageError("--explain goes with --dry-run (it stores nothing)")
        results = [_explain(raw) for _name, raw in inputs]
        if as_json:
            emit_json(results if len(files) > 1 else results[0])
            return
        for r in results:
            click.echo(f"{r['kind']} -> {r['route']} (rule {r['rule']}): {r['reason']}")
            for v in r["verdicts"]:  # type: ignore[union-attr]
                click.echo(f"  {'MATCH' if v['matched'] else 'no   '} {v['rule']:<13} {v['detail']}")
        return
    try:
        eng = engine()
        stored = raw_store.store_many(eng, [raw_store.Incoming(raw, "pipe") for _name, raw in inputs])
    except (SQLAlchemyError, ConfigError) as err:
        click.echo(f"error: could not store the message in {safe_url()} ({type(err).__name__}); "
                   "exit 75 so the sender tries again", err=True)
        sys.exit(EX_TEMPFAIL)
    shown = []
    for item in stored:
        if pipeline.route_stored(eng, item.id) is None:  # stored is safe; the worker tries again
            click.echo(f"warning: message {item.id} is stored but routing failed; the worker tries again", err=True)
        with db() as session:
            row = triage.get_inbound(session, item.id)
            shown.append({**json_views.inbound_json(session, row), "duplicate": item.duplicate})
    if as_json:
        emit_json(shown if len(files) > 1 else shown[0])
        return
    for m in shown:
        who = f"employee {m['employee_number']}" if m["employee_number"] is not None else m["route"]
        dup = " (already stored)" if m["duplicate"] else ""
        click.echo(f"#{m['id']} {m['kind']} -> {who}{dup}: {m['reason']}")


@click.group()
def messages() -> None:
    """Inbound messages."""


@messages.command("list")
@click.option("--unassigned", is_flag=True, help="Only open Unassigned messages.")
@click.option("--employee", "employee_number", type=int)
@click.option("--limit", default=200, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
def messages_list(unassigned: bool, employee_number: int | None, limit: int, as_json: bool) -> None:
    with db() as session:
        query = select(InboundMessage).where(InboundMessage.routed_at.is_not(None))
        if unassigned:
            query = query.where(InboundMessage.route == "unassigned", InboundMessage.triage == "open")
        if employee_number is not None:
            query = query.join(Employee, Employee.id == InboundMessage.employee_id).where(
                Employee.number == employee_number)
        rows = session.exec(query.order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
                            .limit(limit)).all()
        items = [json_views.inbound_json(session, m) for m in rows]
    if as_json:
        emit_json(items)
        return
    for m in items:
        who = f"employee {m['employee_number']}" if m["employee_number"] is not None else m["route"]
        click.echo(f"#{m['id']} {m['received_at'][:19]} {m['kind']:<10} {who:<14} {m['from']} {m['subject']!r}")
        if m["route"] != "employee" or m["flagged"]:
            click.echo(f"    {m['flag_reason'] or m['reason']}")


@messages.command("reroute")
@click.argument("ids", nargs=-1, type=int, required=True)
def messages_reroute(ids: tuple[int, ...]) -> None:
    """Route stored messages again, e.g. after adding an employee or fixing the reply address."""
    rows = triage.reroute(engine(), list(ids))
    for row in rows:
        click.echo(f"#{row.id} -> {row.route}: {row.reason}")


@messages.command("confirm-sender")
@click.argument("inbound_id", type=int)
def messages_confirm_sender(inbound_id: int) -> None:
    """Confirm a flagged reply's new sender address as the candidate's, so their mail routes to this employee."""
    with db() as session:
        row = triage.confirm_sender(session, inbound_id)
        shown = json_views.inbound_json(session, row)
    click.echo(f"{shown['from']} is now a candidate address of employee {shown['employee_number']}")


@click.group()
def unassigned() -> None:
    """The Unassigned messages inbox: list, show, assign, dismiss, restore."""


@unassigned.command("list")
@click.option("--json", "as_json", is_flag=True)
def unassigned_list(as_json: bool) -> None:
    ctx = click.get_current_context()
    ctx.invoke(messages_list, unassigned=True, employee_number=None, limit=500, as_json=as_json)


@unassigned.command("show")
@click.argument("inbound_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def unassigned_show(inbound_id: int, as_json: bool) -> None:
    with db() as session:
        row = triage.get_inbound(session, inbound_id)
        shown = {**json_views.inbound_json(session, row), "text": row.reply_text}
    if as_json:
        emit_json(shown)
        return
    for key in ("id", "from", "subject", "received_at", "kind", "route", "reason", "triage"):
        click.echo(f"{key}: {shown[key]}")
    click.echo("")
    click.echo(shown["text"] or "(no text)")


@unassigned.command("assign")
@click.argument("inbound_id", type=int)
@click.option("--employee", "employee_number", required=True, type=int)
def unassigned_assign(inbound_id: int, employee_number: int) -> None:
    with db() as session:
        triage.assign(session, inbound_id, employee_number)
    click.echo(f"Message {inbound_id} assigned to employee {employee_number}")


@unassigned.command("dismiss")
@click.argument("inbound_id", type=int)
def unassigned_dismiss(inbound_id: int) -> None:
    with db() as session:
        triage.dismiss(session, inbound_id)
    click.echo(f"Message {inbound_id} dismissed (restore with `replybridge unassigned restore {inbound_id}`)")


@unassigned.command("restore")
@click.argument("inbound_id", type=int)
def unassigned_restore(inbound_id: int) -> None:
    with db() as session:
        triage.restore(session, inbound_id)
    click.echo(f"Message {inbound_id} is back in Unassigned messages")


COMMANDS = [ingest, messages, unassigned]
