"""`replybridge token`: bearer tokens of the HTTP API (create prints the token once; only its hash is kept)."""

from __future__ import annotations

import click

from bridge.accounts import api_tokens
from bridge.cli.common import db, emit_json


@click.group()
def token() -> None:
    """Bearer tokens of the HTTP API (/api/v1)."""


@token.command("create")
@click.argument("name")
@click.option("--employee", "employee_number", type=int, help="The token acts as this employee (by number).")
@click.option("--admin", is_flag=True, help="The token acts for every employee.")
def token_create(name: str, employee_number: int | None, admin: bool) -> None:
    """Make a token and print it alone on standard output. It is shown this once: store it now."""
    if admin == (employee_number is not None):
        raise click.UsageError("give exactly one of --employee N or --admin")
    with db() as session:
        value = api_tokens.create(session, name, employee_number=employee_number, admin=admin)
    click.echo(value)


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
def token_list(as_json: bool) -> None:
    """Names, whom each token acts for, when made and last used (never the tokens themselves)."""
    with db() as session:
        rows = api_tokens.list_tokens(session)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no tokens")
        return
    for r in rows:
        who = "admin" if r["admin"] else f"employee {r['employee_number']}"
        click.echo(f"{r['name']}\t{who}\tcreated {r['created_at']}\tlast used {r['last_used_at'] or 'never'}")


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Delete a token: requests with it are refused from now on."""
    with db() as session:
        api_tokens.revoke(session, name)
    click.echo(f"revoked {name}")


COMMANDS: list = [token]
