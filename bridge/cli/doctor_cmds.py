"""`replybridge doctor`: checks the key, the database, file permissions, each account's Test connection and the
poll folders, and says what to fix (bridge.ops.doctor). Exit code 1 when a check FAILs."""

from __future__ import annotations

import sys

import click

from bridge.cli.common import emit_json
from bridge.ops.doctor.run import run

DEADLINE_S = 20.0


@click.command("doctor")
@click.option("--timeout", default=DEADLINE_S, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds to wait for every account's Test connection together (they run at once).")
@click.option("--json", "as_json", is_flag=True, help="A list of {check, status, detail, fix}.")
def doctor(timeout: float, as_json: bool) -> None:
    """Check the set-up: each line ok, warn or FAIL, what was found and what to do. Exit 1 on a FAIL."""
    findings = run(timeout)
    if as_json:
        emit_json([f.as_json() for f in findings])
    else:
        for finding in findings:
            click.echo(finding.line())
    if any(f.status == "FAIL" for f in findings):
        sys.exit(1)


COMMANDS = [doctor]
