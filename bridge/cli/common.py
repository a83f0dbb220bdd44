"""What every command shares: the database, errors as `error: ...`, JSON output, password input."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bridge import audit
from bridge.config.settings import current, masked_url
from bridge.errors import BridgeError, ConfigError
from models.db import schema_is_current, session_scope, shared_engine


def safe_url() -> str:
    """The database URL with any password masked, for messages."""
    return masked_url(current().database_url)


def engine() -> Engine:
    """The engine of an initialised, current database; a clear error otherwise."""
    eng = shared_engine(current().database_url)
    if not schema_is_current(eng):
        raise ConfigError(f"the database {safe_url()} is not initialised or not upgraded: run `replybridge init`")
    return eng


@contextmanager
def db() -> Iterator[Session]:
    """A session of the command: what it records in the audit log names the user who ran it."""
    with session_scope(engine()) as session:
        audit.act_as(session, audit.command_actor())
        yield session


def emit_json(value: object) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def read_password(stdin: bool, env: str | None, required: bool) -> str | None:
    """The password from the first line of stdin or from an environment variable; never an argument."""
    if stdin and env:
        raise click.UsageError("give --password-stdin or --password-env, not both")
    if stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise BridgeError("--password-stdin: standard input held no password")
        return value
    if env:
        value = os.environ.get(env)
        if not value:
            raise BridgeError(f"--password-env: the environment variable {env} is not set or empty")
        return value
    if required:
        raise click.UsageError("a password is needed: --password-stdin or --password-env VAR")
    return None


def password_options(f):  # noqa: ANN001, ANN201 - a click decorator
    f = click.option("--password-env", metavar="VAR", help="Read the password from this environment variable.")(f)
    return click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")(f)


def oauth_options(f):  # noqa: ANN001, ANN201 - a click decorator
    f = click.option("--oauth-flow", type=click.Choice(["delegated", "app"]), default="delegated", show_default=True,
                     help="delegated: a person signs in (oauth login); app: client credentials, no person.")(f)
    return click.option("--oauth", metavar="NAME", help="Sign in with this OAuth client (XOAUTH2) instead of a "
                        "password.")(f)


def identity_options(f):  # noqa: ANN001, ANN201 - a click decorator
    """An SMTP account's own sender identity (the database-wide account's error reports and letters)."""
    f = click.option("--from-address", help="The address the account's own mail (error reports, letters to new "
                     "senders) goes out from (default: its username).")(f)
    return click.option("--from-name", help="The friendly name that mail goes out under (default: the mailer "
                        "name).")(f)


def server_options(f):  # noqa: ANN001, ANN201 - a click decorator
    """Options SMTP accounts and IMAP servers share."""
    for decorator in reversed([
        click.argument("name"),
        click.option("--host", required=True),
        click.option("--port", type=int, help="Required unless --host is given as HOST:PORT."),
        click.option("--security", required=True, type=click.Choice(["ssl", "starttls", "none"])),
        click.option("--timeout", default=30.0, show_default=True, type=float, help="Seconds."),
        click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
                     help="CA certificates to trust for this server (a private CA)."),
        password_options,
    ]):
        f = decorator(f)
    return f
