"""Changing and removing set-up: `smtp set|remove`, `imap set|remove`, `alias set|remove`, `employee set`.

`set` changes only the options given and keeps the rest (a password only through --password-stdin or
--password-env, never an argument); `remove` is refused while something uses the thing, naming it
(bridge.accounts.removal). The groups are the ones `add` and `list` live in (setup_cmds).
"""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlmodel import Session

from bridge.accounts import aliases, employees, imap_servers, removal, servers, smtp_accounts
from bridge.accounts.aliases import AliasFields
from bridge.cli.common import db, identity_options, password_options, read_password
from bridge.cli.setup_cmds import alias, employee, imap, smtp
from models import Employee, ImapServer, SmtpAccount


def _server_change_options(f):  # noqa: ANN001, ANN201 - a click decorator
    """What `smtp set` and `imap set` may change; every option optional."""
    for decorator in reversed([
        click.argument("name"),
        click.option("--rename", "new_name", help="A new name."),
        click.option("--host"),
        click.option("--port", type=int),
        click.option("--security", type=click.Choice(["ssl", "starttls", "none"])),
        click.option("--timeout", type=float, help="Seconds."),
        click.option("--ca-file", type=click.Path(exists=True, dir_okay=False)),
        click.option("--username", help="A new username (`\"\"` for none, SMTP only)."),
        password_options,
    ]):
        f = decorator(f)
    return f


def _fields(account: SmtpAccount | ImapServer, new_name: str | None, host: str | None, port: int | None,
            security: str | None, timeout: float | None, ca_file: str | None, username: str | None,
            password: str | None) -> servers.ServerFields:
    """The account's fields with the given changes; no password keeps the stored one."""
    return servers.ServerFields(
        new_name or account.name, host or account.host, port if port is not None else (None if host and ":" in host
                                                                                          else account.port),
        security or account.security, account.username if username is None else (username or None), password,
        account.timeout if timeout is None else timeout, ca_file or account.ca_file)


@smtp.command("set")
@_server_change_options
@click.option("--default/--not-default", "is_default", default=None, help="Make it the database-wide account (or not).")
@click.option("--provider-files-sent/--we-file-sent", "provider_files_sent", default=None,
              help="Whether the provider files SMTP-sent mail in Sent itself.")
@identity_options
def smtp_set(name: str, new_name: str | None, host: str | None, port: int | None, security: str | None,
             timeout: float | None, ca_file: str | None, username: str | None, password_stdin: bool,
             password_env: str | None, is_default: bool | None, provider_files_sent: bool | None,
             from_name: str | None, from_address: str | None) -> None:
    """Change an SMTP account (the password, after a "wrong credentials" hint)."""
    password = read_password(password_stdin, password_env, required=False)
    with db() as session:
        account = smtp_accounts.get_smtp(session, name)
        fields = _fields(account, new_name, host, port, security, timeout, ca_file, username, password)
        smtp_accounts.update_smtp(
            session, account.id, fields, is_default=account.is_default if is_default is None else is_default,
            provider_files_sent=account.provider_files_sent if provider_files_sent is None else provider_files_sent,
            from_name=from_name, from_address=from_address)
    click.echo(f"SMTP account {fields.name!r} changed")


@imap.command("set")
@_server_change_options
@click.option("--sent-folder", help="`auto` finds it by SPECIAL-USE.")
@click.option("--poll-folder", help="Folder to poll for inbound replies (`\"\"`: stop polling).")
@click.option("--poll-after", help="seen, none, or move:FOLDER.")
def imap_set(name: str, new_name: str | None, host: str | None, port: int | None, security: str | None,
             timeout: float | None, ca_file: str | None, username: str | None, password_stdin: bool,
             password_env: str | None, sent_folder: str | None, poll_folder: str | None,
             poll_after: str | None) -> None:
    """Change an IMAP server; a running `serve` watches a changed poll folder within seconds."""
    password = read_password(password_stdin, password_env, required=False)
    with db() as session:
        server = imap_servers.get_imap(session, name)
        fields = _fields(server, new_name, host, port, security, timeout, ca_file, username, password)
        imap_servers.update_imap(
            session, server.id, fields, sent_folder=sent_folder or server.sent_folder,
            poll_folder=server.poll_folder if poll_folder is None else (poll_folder or None),
            poll_after=poll_after or server.poll_after)
    click.echo(f"IMAP server {fields.name!r} changed")


@alias.command("set")
@click.argument("description")
@click.option("--description", "new_description", help="A new description.")
@click.option("--display-name")
@click.option("--from", "from_address")
@click.option("--reply-to", help="Your own address for replies as well (`\"\"` for none); the numbered address "
              "stays first in Reply-To.")
@click.option("--smtp", "smtp_name", help="SMTP account (`\"\"`: the database-wide account).")
@click.option("--imap", "imap_name", help="IMAP server whose Sent folder gets a copy (`\"\"`: none).")
@click.option("--default", "is_default", is_flag=True, default=None, help="Make it the employee's default alias.")
@click.option("--delay-ms", type=int, help="Delay between emails.")
def alias_set(description: str, new_description: str | None, display_name: str | None, from_address: str | None,
              reply_to: str | None, smtp_name: str | None, imap_name: str | None, is_default: bool | None,
              delay_ms: int | None) -> None:
    """Change an alias."""
    with db() as session:
        found = aliases.get_alias(session, description)
        fields = AliasFields(
            session.get(Employee, found.employee_id).number, new_description or found.description,
            display_name or found.display_name, from_address or found.from_address,
            found.reply_to if reply_to is None else (reply_to or None),
            _name_of(session, SmtpAccount, found.smtp_account_id) if smtp_name is None else (smtp_name or None),
            _name_of(session, ImapServer, found.imap_server_id) if imap_name is None else (imap_name or None),
            found.is_default if is_default is None else is_default,
            found.delay_ms if delay_ms is None else delay_ms)
        aliases.update_alias(session, found.id, fields)
    click.echo(f"Alias {fields.description!r} changed")


def _name_of(session, model: type[SmtpAccount] | type[ImapServer], record_id: int | None) -> str | None:  # noqa: ANN001
    return session.get(model, record_id).name if record_id is not None else None


@employee.command("set")
@click.argument("number", type=int)
@click.option("--name")
@click.option("--email")
@click.option("--admin/--not-admin", "admin", default=None)
@click.option("--delivery", type=click.Choice(sorted(employees.HAND_OFF_MODES)))
def employee_set(number: int, name: str | None, email: str | None, admin: bool | None, delivery: str | None) -> None:
    """Change an employee (the number stays: it is in every numbered address already sent)."""
    with db() as session:
        found = employees.get_employee(session, number)
        employees.update_employee(session, number, name=name or found.name, email=email or found.email,
                                  admin=found.admin if admin is None else admin,
                                  delivery=delivery or found.delivery)
    click.echo(f"Employee {number} changed")


def _remove_command(group: click.Group, noun: str, metavar: str, remover: Callable[[Session, str], None],
                    doc: str) -> None:
    """`GROUP remove NAME`: bridge.accounts.removal, which refuses while the thing is in use."""
    @group.command("remove", help=doc)
    @click.argument("name", metavar=metavar)
    def remove(name: str) -> None:
        with db() as session:
            remover(session, name)
        click.echo(f"{noun} {name!r} removed")


_remove_command(smtp, "SMTP account", "NAME", removal.remove_smtp, "Remove an SMTP account no alias uses.")
_remove_command(imap, "IMAP server", "NAME", removal.remove_imap,
                "Remove an IMAP server no alias links (its polling stops).")
_remove_command(alias, "Alias", "DESCRIPTION", removal.remove_alias,
                "Remove an alias with no mail waiting to go out through it (its sent mail keeps its From).")
