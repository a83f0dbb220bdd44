"""Mail commands: send (one or a CSV batch), the Mail Log, queue again, the worker."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge import json_views
from bridge.cli.common import db, emit_json, engine
from bridge.config import logs
from bridge.config.settings import current
from bridge.errors import InputError
from bridge.inbound.imap import folder_state, one_pass
from bridge.ops import worker
from bridge.outbound import bulk, queue
from models import DeliveryAttempt, ImapServer, OutboundMessage, utcnow
from models.db import session_scope

STATUSES = queue.STATUSES


def _read_text(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the {what} file {path!r}: {err}") from None


@click.command()
@click.option("--employee", "employee_number", required=True, type=int)
@click.option("--alias", "alias_description", help="Alias description (default: the employee's default alias).")
@click.option("--to", help="Recipient address.")
@click.option("--to-name", help="Recipient's name.")
@click.option("--subject", required=True)
@click.option("--body", help="Plain-text body.")
@click.option("--body-file", type=click.Path(dir_okay=False), help="Plain-text body from a file (UTF-8).")
@click.option("--html-file", type=click.Path(dir_okay=False), help="HTML body from a file (UTF-8).")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False),
              help="Bulk: one message per row; columns email (or to), name, and any {column} placeholders.")
@click.option("--automated", is_flag=True, help="Automated mail: database-wide account, Auto-Submitted header.")
@click.option("--json", "as_json", is_flag=True)
def send(employee_number: int, alias_description: str | None, to: str | None, to_name: str | None, subject: str,
         body: str | None, body_file: str | None, html_file: str | None, csv_file: str | None, automated: bool,
         as_json: bool) -> None:
    """Queue a message (or a CSV batch) and print its Mail Log id."""
    if body is not None and body_file is not None:
        raise click.UsageError("give --body or --body-file, not both")
    text = body if body is not None else _read_text(body_file, "body")
    html = _read_text(html_file, "HTML body")
    if text is None and html is None:
        raise click.UsageError("a body is needed: --body, --body-file or --html-file")
    base = queue.Request(employee_number=employee_number, to="", subject=subject, text=text, html=html,
                            alias=alias_description, automated=automated)
    if csv_file:
        if to:
            raise click.UsageError("give --to or --csv, not both")
        _send_csv(base, csv_file, as_json)
        return
    if not to:
        raise click.UsageError("a recipient is needed: --to ADDR (or --csv FILE)")
    with db() as session:
        message = queue.queue(session, queue.Request(**{**base.__dict__, "to": to, "to_name": to_name}))
        shown = json_views.log_json(session, message)
    if as_json:
        emit_json(shown)
    else:
        click.echo(shown["id"])
    if shown["status"] == "not_sent":
        click.echo(f"warning: not sent: {shown['last_reply']}. {shown['hint']}", err=True)


def _send_csv(base: queue.Request, path: str, as_json: bool) -> None:
    """All rows are checked and queued in one transaction: one bad row queues nothing."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the CSV file {path!r}: {err}") from None
    rows = bulk.read_rows(text, repr(path))
    queued: list[dict[str, object]] = []
    with db() as session:
        with click.progressbar(length=len(rows), label="Queueing", file=sys.stderr, show_pos=True) as bar:
            def each(message: OutboundMessage) -> None:
                queued.append(json_views.log_json(session, message))
                bar.update(1)

            bulk.queue_rows(session, base, rows, path, each)
        delay = bulk.delay_ms(session, base)
    if as_json:
        emit_json(queued)
    else:
        for item in queued:
            click.echo(item["id"])
    estimate = bulk.estimate(delay, len(queued))
    click.echo(f"Queued {len(queued)} messages{'; ' + estimate if estimate else ''}.", err=True)


@click.command("log")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--id", "entry_id", type=int, help="One entry with every attempt.")
@click.option("--limit", default=200, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
def log_cmd(status: str | None, entry_id: int | None, limit: int, as_json: bool) -> None:
    """The Mail Log: every outbound message, its status, the server's reply and a hint."""
    with db() as session:
        if entry_id is not None:
            message = session.get(OutboundMessage, entry_id)
            if message is None:
                raise InputError(f"no Mail Log entry {entry_id}")
            entry = json_views.log_json(session, message)
            entry["history"] = [
                {"number": a.number, "at": a.at.isoformat(), "outcome": a.outcome, "code": a.code,
                 "reply": a.reply, "hint": a.hint, "smtp_account": a.smtp_account}
                for a in session.exec(select(DeliveryAttempt).where(DeliveryAttempt.outbound_id == entry_id)
                                      .order_by(DeliveryAttempt.id))]
            _show_entry(entry, as_json)
            return
        query = select(OutboundMessage).order_by(OutboundMessage.id.desc()).limit(limit)
        if status:
            query = query.where(OutboundMessage.status == status)
        entries = [json_views.log_json(session, m) for m in session.exec(query)]
    if as_json:
        emit_json(entries)
        return
    for e in entries:
        click.echo(f"#{e['id']} {e['status']:<13} attempts={e['attempts']} sent_folder={e['sent_folder']} "
                   f"to={e['to']} subject={e['subject']!r}")
        if e["last_reply"] and e["status"] != "sent":
            click.echo(f"    server: {e['last_reply']}")
        if e["hint"]:
            click.echo(f"    hint: {e['hint']}")


def _show_entry(entry: dict[str, object], as_json: bool) -> None:
    if as_json:
        emit_json(entry)
        return
    for key in ("id", "message_id", "from", "to", "subject", "status", "attempts", "last_reply", "hint",
                "sent_folder", "sent_folder_error"):
        click.echo(f"{key}: {entry[key]}")
    for a in entry["history"]:  # type: ignore[union-attr]
        click.echo(f"  attempt {a['number']} {a['at']} {a['outcome']}: {a['reply'] or ''}")


@click.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--status", type=click.Choice(["not_sent", "undeliverable"]), help="Every entry with this status.")
def requeue(ids: tuple[int, ...], status: str | None) -> None:
    """Queue not_sent or undeliverable messages again, once the cause is fixed."""
    with db() as session:
        chosen = list(ids)
        if status:
            chosen += [m.id for m in session.exec(select(OutboundMessage).where(OutboundMessage.status == status))]
        if not chosen:
            raise click.UsageError("name the Mail Log ids to queue again, or --status")
        done = queue.requeue(session, chosen)
    click.echo(f"Queued again: {', '.join(str(m.id) for m in done)}")


def _due_count() -> int:
    with db() as session:
        return session.exec(select(func.count()).select_from(OutboundMessage).where(
            OutboundMessage.status.in_(("queued", "deferred")),
            OutboundMessage.next_attempt_at <= utcnow())).one()


@click.command("worker")
@click.option("--once", is_flag=True, help="Do all work due now, then exit.")
@click.option("--interval", type=float, help="Seconds between runs (without --once); default: the worker_interval "
              "setting, 5.")
def worker_cmd(once: bool, interval: float | None) -> None:
    """Poll IMAP, route, send the queue, file sent mail in Sent folders, deliver webhooks."""
    logs.configure()
    eng = engine()
    if not once:
        from bridge.ops.schedule import run_worker_forever  # the scheduler loads only for a worker that keeps running
        run_worker_forever(eng, interval if interval is not None else current().worker_interval)
        return
    polled = _poll_imap_once(eng)
    due = _due_count()
    if due > 1 and sys.stderr.isatty():
        with click.progressbar(length=due, label="Sending", file=sys.stderr, show_eta=True) as bar:
            done = [0]

            def advance(report: worker.RunReport) -> None:
                total = report.sent + report.deferred + report.undeliverable + report.not_sent
                bar.update(total - done[0])
                done[0] = total
            report = worker.run_once(eng, advance)
    else:
        report = worker.run_once(eng)
    click.echo(f"polled {polled} new from IMAP, sent {report.sent}, deferred {report.deferred}, "
               f"undeliverable {report.undeliverable}, not sent {report.not_sent}, filed in Sent {report.filed}",
               err=True)


def _poll_imap_once(eng: Engine) -> int:
    """One pass over every IMAP poll folder (what `serve`'s watchers do continuously); returns new messages.
    A server that cannot be reached is reported and the others still polled."""

    with session_scope(eng) as session:
        servers = session.exec(select(ImapServer.id, ImapServer.name).where(ImapServer.poll_folder.is_not(None))).all()
    new = 0
    for server_id, name in servers:
        result = one_pass.poll_once(eng, server_id, f"{folder_state.default_owner()}:once:{server_id}")
        if result.error:
            click.echo(f"IMAP {name}: {result.error}", err=True)
        new += result.stored
    return new


COMMANDS = [send, log_cmd, requeue, worker_cmd]
