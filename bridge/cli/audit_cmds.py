"""`replybridge audit`: the audit log (bridge.audit), newest first, for the admin who must answer "who did
what, and when" about candidates' data."""

from __future__ import annotations

import datetime as dt

import click

from bridge import audit
from bridge.cli.common import db, emit_json
from bridge.errors import InputError


def _since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--since {value!r} is not a date or time (e.g. 2026-12-01 or 2026-12-01T09:30)") from None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


@click.command("audit")
@click.option("--action", type=click.Choice(audit.ACTIONS), help="Only this kind of action.")
@click.option("--since", metavar="DATE", help="Only entries from this date or time on (UTC unless given).")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--json", "as_json", is_flag=True)
def audit_log(action: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """Who did what: sign-ins, triage, replies, raw-source views, erasures, exports, set-up changes."""
    with db() as session:
        items = [audit.entry_json(e) for e in audit.entries(session, action=action, since=_since(since),
                                                             limit=limit)]
    if as_json:
        emit_json(items)
        return
    if not items:
        click.echo("no audit entries" + (f" for {action}" if action else ""))
    for e in items:
        line = f"{e['at'][:19]}  {e['actor']}  {e['action']}"
        line += f"  {e['target']}" if e["target"] else ""
        click.echo(line + (f"  ({e['detail']})" if e["detail"] else ""))


COMMANDS = [audit_log]
