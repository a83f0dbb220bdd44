"""`replybridge retention ...`: apply the keep_*_days settings now (the daily job does the same) and list
what retention removed, as counts without content."""

from __future__ import annotations

import click

from bridge import audit
from bridge.cli.common import db, emit_json, engine
from bridge.privacy import retention, retention_tally

NOT_CONFIGURED = ("No retention setting is set: everything is kept. Set keep_inbound_days, keep_mail_log_days, "
                  "keep_dismissed_days or keep_audit_days with `replybridge settings set`.")


@click.group("retention")
def retention_group() -> None:
    """Retention: delete mail, Mail Log entries, webhook events and audit entries past their time."""


def _progress(batch: int) -> retention.Progress:
    """Progress on stderr once a kind needs more than one batch (a backlog), so stdout stays the result."""
    def show(kind: str, removed: int) -> None:
        if removed >= batch:
            click.echo(f"{kind}: {removed} removed so far ...", err=True)
    return show


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@click.option("--json", "as_json", is_flag=True)
def retention_run(dry_run: bool, as_json: bool) -> None:
    """Remove what the keep_*_days settings no longer allow; print per kind how many and the cut-off."""
    report = retention.run(engine(), dry_run=dry_run, progress=None if as_json else _progress(retention.BATCH),
                           actor=audit.command_actor())
    if as_json:
        emit_json(report.as_json())
        return
    if not report.configured:
        click.echo(NOT_CONFIGURED)
        return
    verb = "would be removed" if dry_run else "removed"
    for r in report.results:
        outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(r.by_outcome.items()))
        click.echo(f"{r.kind}: {r.removed} {verb} (made before {r.cutoff:%Y-%m-%d %H:%M} UTC, {r.setting} "
                   f"{r.days}){f': {outcomes}' if outcomes else ''}")
    if not report.removed:
        click.echo("Nothing to remove.")


@retention_group.command("history")
@click.option("--kind", type=click.Choice(retention_tally.KINDS), help="Only this kind.")
@click.option("--json", "as_json", is_flag=True)
def retention_history(kind: str | None, as_json: bool) -> None:
    """What retention removed: per day the records were made, kind and outcome, how many."""
    with db() as session:
        rows = retention_tally.history(session, kind)
    if as_json:
        emit_json([r.as_json() for r in rows])
        return
    if not rows:
        click.echo("Retention has removed nothing.")
    for r in rows:
        click.echo(f"{r.day.isoformat()}  {r.kind:<9}  {r.outcome:<14}  {r.count}")


COMMANDS = [retention_group]
