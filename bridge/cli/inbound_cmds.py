"""Inbound commands: the message lists and Unassigned triage (`ingest` is bridge.cli.ingest_cmd)."""

from __future__ import annotations

import click
from sqlmodel import select

from bridge import audit, json_views
from bridge.accounts import employees
from bridge.cli.common import db, emit_json, engine
from bridge.inbound import search, triage
from bridge.inbound.message_content import reply_text
from models import Employee, InboundMessage


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
    _print_items(items)


@messages.command("search")
@click.argument("query")
@click.option("--employee", "employee_number", type=int, help="Only this employee's messages.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, search.RANKED))
@click.option("--json", "as_json", is_flag=True)
def messages_search(query: str, employee_number: int | None, limit: int, as_json: bool) -> None:
    """Find messages by address, name, subject, reply text or attachment name: every word, the last one as a
    prefix; best matches first."""
    with db() as session:
        employee_id = None
        if employee_number is not None:
            employee_id = employees.get_employee(session, employee_number).id
        found = search.search(session, query, search.Viewer(admin=True), search.Filters(employee_id=employee_id),
                              limit=limit)
        items = [json_views.inbound_json(session, m) for m in search.rows_in_order(session, found.ids)]
    if as_json:
        emit_json(items)
        return
    _print_items(items)
    if found.capped:
        click.echo(f"(more than {search.RANKED:,} messages match: the newest {search.RANKED:,} were ranked)", err=True)


def _print_items(items: list[dict]) -> None:
    for m in items:
        who = f"employee {m['employee_number']}" if m["employee_number"] is not None else m["route"]
        click.echo(f"#{m['id']} {m['received_at'][:19]} {m['kind']:<10} {who:<14} {m['from']} {m['subject']!r}")
        if m["route"] != "employee" or m["flagged"]:
            click.echo(f"    {m['flag_reason'] or m['reason']}")


@messages.command("reroute")
@click.argument("ids", nargs=-1, type=int, required=True)
def messages_reroute(ids: tuple[int, ...]) -> None:
    """Route stored messages again, e.g. after adding an employee or fixing the reply address."""
    rows = triage.reroute(engine(), list(ids), audit.command_actor())
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
        shown = {**json_views.inbound_json(session, row), "text": reply_text(row.reply_text, row.raw)}
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


COMMANDS = [messages, unassigned]
