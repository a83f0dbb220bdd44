"""`replybridge oauth`: register OAuth clients and sign accounts in without a password."""

from __future__ import annotations

import os
from pathlib import Path

import click
from sqlmodel import select

from bridge import audit
from bridge.accounts.oauth import clients, providers
from bridge.cli.common import db, emit_json, engine
from bridge.errors import InputError
from models import OAuthClient


@click.group()
def oauth() -> None:
    """OAuth 2 sign-in (Microsoft 365, Google, or any provider) for SMTP accounts and IMAP servers."""


@oauth.command("add")
@click.argument("name")
@click.option("--provider", required=True, type=click.Choice(providers.PROVIDERS))
@click.option("--client-id", help="The application (client) id the provider gave.")
@click.option("--service-account-file", type=click.Path(exists=True, dir_okay=False),
              help="Google Workspace app-only access: the service account's JSON key (domain-wide delegation).")
@click.option("--client-secret-env", metavar="VAR", help="Read the client secret from this environment variable.")
@click.option("--tenant", help="Microsoft: the tenant id or domain (app-only access needs it).")
@click.option("--scope", "scopes", multiple=True, help="Scopes to ask for (default: the provider's mail scopes).")
@click.option("--authorize-url")
@click.option("--token-url")
@click.option("--device-url")
def oauth_add(name: str, provider: str, client_id: str | None, service_account_file: str | None,
              client_secret_env: str | None, tenant: str | None, scopes: tuple[str, ...], authorize_url: str | None,
              token_url: str | None, device_url: str | None) -> None:
    """Register the application NAME that accounts sign in with.

    Google Workspace app-only access (--oauth-flow app) is a service account with domain-wide
    delegation: give its key with --service-account-file; it acts for each account's mailbox."""
    secret = None
    key = Path(service_account_file).read_text() if service_account_file else None
    if client_secret_env:
        secret = os.environ.get(client_secret_env)
        if not secret:
            raise InputError(f"--client-secret-env: the environment variable {client_secret_env} is not set or empty")
    with db() as session:
        clients.add_client(session, name, provider, client_id, client_secret=secret, tenant=tenant,
                           scopes=list(scopes), authorize_url=authorize_url, token_url=token_url,
                           device_url=device_url, service_account_key=key)
    click.echo(f"OAuth client {name} added ({provider})")


@oauth.command("list")
@click.option("--json", "as_json", is_flag=True)
def oauth_list(as_json: bool) -> None:
    with db() as session:
        rows = [clients.client_json(c) for c in session.exec(select(OAuthClient).order_by(OAuthClient.name))]
    if as_json:
        emit_json(rows)
        return
    for c in rows:
        click.echo(f"{c['name']}  {c['provider']}  client {c['client_id']}  secret {c['client_secret']}")


@oauth.command("login")
@click.argument("kind", type=click.Choice(providers.KINDS))
@click.argument("name")
@click.option("--device", is_flag=True, required=True,
              help="Print a URL and a code to approve in any browser, and wait for the approval.")
def oauth_login(kind: str, name: str, device: bool) -> None:
    """Sign the SMTP account or IMAP server NAME in (delegated access)."""
    from bridge.accounts.oauth import flows  # authlib loads only for a sign-in

    eng = engine()
    target = flows.target(eng, kind, name)
    code = flows.start_device(target)
    click.echo(f"To sign in, open {code.verification_uri} and enter the code {code.user_code}")
    click.echo("Waiting for the approval (Ctrl-C stops) ...", err=True)
    flows.finish_device(eng, target, code)
    with db() as session:
        audit.record(session, "account", f"{kind} {name}", "signed in with OAuth")
    click.echo(f"Signed in: the {kind} account {name} now uses OAuth tokens")


COMMANDS = [oauth]
