"""Set-up commands: init, settings, employees, SMTP accounts, IMAP servers, aliases, Test Connection."""

from __future__ import annotations

import sys

import click
from sqlmodel import select

from bridge import audit, crypto, portal
from bridge.accounts import aliases, employees, imap_servers, servers, smtp_accounts
from bridge.checks import loop_probe
from bridge.checks.connection_check import Report, check_imap, check_smtp
from bridge.checks.loop_probe import LoopReport
from bridge.cli.common import (
    db,
    emit_json,
    engine,
    identity_options,
    oauth_options,
    password_options,
    read_password,
    safe_url,
    server_options,
)
from bridge.config.settings import current
from bridge.input_checks import check_address
from bridge.ops.error_reports import report_mail
from models import Alias, Employee, ImapServer, SmtpAccount
from models.db import session_scope, shared_engine, upgrade
from routing.addresses import AddressTemplate


@click.command()
@click.option("--reply-address", metavar="TEMPLATE", help="Numbered address template, e.g. jobs+{number}@example.com")
@click.option("--domain", "domains", multiple=True, metavar="D", help="An accepted domain (repeatable).")
def init(reply_address: str | None, domains: tuple[str, ...]) -> None:
    """Create or upgrade the database (and the secret key file)."""
    key_path = crypto.ensure_key_file()
    eng = shared_engine(current().database_url)
    upgrade(eng)
    with session_scope(eng) as session:
        audit.act_as(session, audit.command_actor())
        if reply_address:
            portal.set_setting(session, "reply_address", reply_address)
        if domains:
            portal.set_setting(session, "accepted_domains", ",".join(domains))
        settings = portal.load(session)
        if settings.reply_address and not settings.accepted_domains:
            portal.set_setting(session, "accepted_domains", AddressTemplate(settings.reply_address).domain)
    click.echo(f"Database ready: {safe_url()}")
    if key_path:
        click.echo(f"Secret key file: {key_path}")


@click.group()
def settings() -> None:
    """Portal settings."""


@settings.command("show")
@click.option("--json", "as_json", is_flag=True)
def settings_show(as_json: bool) -> None:
    with db() as session:
        values = portal.load(session).display()
    if as_json:
        emit_json(values)
        return
    for key, value in values.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
        click.echo(f"{key} = {shown}")


# a value that starts with "-" (keep_inbound_days -3) is the value, refused by its own check, not an option
@settings.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
def settings_set(key: str, value: str) -> None:
    """Set KEY to VALUE (lists comma-separated). Keys: see `settings show`."""
    with db() as session:
        stored = portal.set_setting(session, key, value)
    click.echo(f"{portal.canonical_key(key)} = {stored}")


@click.group()
def employee() -> None:
    """Employees and their numbers."""


@employee.command("add")
@click.option("--number", required=True, type=int)
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option("--admin", is_flag=True)
@click.option("--inactive", is_flag=True)
@click.option("--delivery", default="forward", show_default=True, type=click.Choice(employees.HAND_OFF_MODES),
              help="How routed replies reach them: forwarded to their address, into their IMAP INBOX, or not.")
def employee_add(number: int, name: str, email: str, admin: bool, inactive: bool, delivery: str) -> None:
    with db() as session:
        employees.add_employee(session, number, name, email, admin=admin, active=not inactive, delivery=delivery)
    click.echo(f"Employee {number} added")


@employee.command("set-delivery")
@click.argument("number", type=int)
@click.argument("mode", type=click.Choice(employees.HAND_OFF_MODES))
def employee_set_delivery(number: int, mode: str) -> None:
    """How routed replies reach employee NUMBER: forward, imap or none."""
    with db() as session:
        employees.set_delivery(session, number, mode)
    click.echo(f"Employee {number}: delivery {mode}")


@employee.command("set-password")
@click.argument("number", type=int)
@password_options
def employee_set_password(number: int, password_stdin: bool, password_env: str | None) -> None:
    """Set the web sign-in password of employee NUMBER (read from stdin or a variable, never an argument)."""
    from bridge.accounts import passwords  # argon2 loads only when a password is set

    password = read_password(password_stdin, password_env, required=True)
    with db() as session:
        passwords.set_password(session, number, password)
    click.echo(f"Employee {number}: password set")


@employee.command("deactivate")
@click.argument("number", type=int)
def employee_deactivate(number: int) -> None:
    """Employee NUMBER can no longer sign in; their mail goes to Unassigned messages."""
    with db() as session:
        employees.set_active(session, number, False)
    click.echo(f"Employee {number}: inactive")


@employee.command("activate")
@click.argument("number", type=int)
def employee_activate(number: int) -> None:
    with db() as session:
        employees.set_active(session, number, True)
    click.echo(f"Employee {number}: active")


@employee.command("list")
@click.option("--json", "as_json", is_flag=True)
def employee_list(as_json: bool) -> None:
    with db() as session:
        rows = [employees.employee_json(e) for e in session.exec(select(Employee).order_by(Employee.number))]
    if as_json:
        emit_json(rows)
        return
    for e in rows:
        flags = ", ".join(f for f, on in (("admin", e["admin"]), ("inactive", not e["active"])) if on)
        click.echo(f"{e['number']:>6}  {e['name']} <{e['email']}>{f'  ({flags})' if flags else ''}")


@click.group()
def smtp() -> None:
    """SMTP accounts for sending."""


@smtp.command("add")
@server_options
@click.option("--username")
@click.option("--default", "is_default", is_flag=True, help="Make this the database-wide account.")
@click.option("--provider-files-sent", is_flag=True,
              help="The provider files SMTP-sent mail in Sent itself (e.g. Gmail): skip our Sent append.")
@identity_options
@oauth_options
def smtp_add(name: str, host: str, port: int | None, security: str, timeout: float, ca_file: str | None,
             password_stdin: bool, password_env: str | None, username: str | None, is_default: bool,
             provider_files_sent: bool, from_name: str | None, from_address: str | None, oauth: str | None,
             oauth_flow: str) -> None:
    password = read_password(password_stdin, password_env, required=False)
    fields = servers.ServerFields(name, host, port, security, username, password, timeout, ca_file)
    with db() as session:
        smtp_accounts.add_smtp(session, fields, is_default=is_default, provider_files_sent=provider_files_sent,
                               oauth=oauth, oauth_flow=oauth_flow, from_name=from_name, from_address=from_address)
    click.echo(f"SMTP account {name!r} added{' (database-wide)' if is_default else ''}")
    _print_sign_in_step("smtp", name, oauth, oauth_flow)
    _print_notes(fields.notes("smtp"))


@smtp.command("list")
@click.option("--json", "as_json", is_flag=True)
def smtp_list(as_json: bool) -> None:
    with db() as session:
        rows = [{"name": a.name, "host": a.host, "port": a.port, "security": a.security, "username": a.username,
                 "timeout": a.timeout, "default": a.is_default, "provider_files_sent": a.provider_files_sent,
                 "from_name": a.from_name, "from_address": a.from_address}
                for a in session.exec(select(SmtpAccount).order_by(SmtpAccount.name))]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']}: {r['host']}:{r['port']} {r['security']} user={r['username'] or '-'}"
                   f"{' (database-wide)' if r['default'] else ''}")


@click.group()
def imap() -> None:
    """IMAP servers: Sent folders (and inbound polling)."""


@imap.command("add")
@server_options
@click.option("--username", required=True)
@click.option("--sent-folder", default="auto", show_default=True, help="`auto` finds it by SPECIAL-USE.")
@click.option("--poll-folder", help="Folder to poll for inbound replies (the catch-all mailbox, e.g. INBOX).")
@click.option("--poll-after", default="seen", show_default=True,
              help="After a polled message is stored: seen (flag \\Seen), none, or move:FOLDER.")
@oauth_options
def imap_add(name: str, host: str, port: int | None, security: str, timeout: float, ca_file: str | None,
             password_stdin: bool, password_env: str | None, username: str, sent_folder: str,
             poll_folder: str | None, poll_after: str, oauth: str | None, oauth_flow: str) -> None:
    password = read_password(password_stdin, password_env, required=oauth is None)
    fields = servers.ServerFields(name, host, port, security, username, password, timeout, ca_file)
    with db() as session:
        imap_servers.add_imap(session, fields, sent_folder=sent_folder, poll_folder=poll_folder, poll_after=poll_after,
                          oauth=oauth, oauth_flow=oauth_flow)
    click.echo(f"IMAP server {name!r} added")
    _print_sign_in_step("imap", name, oauth, oauth_flow)
    _print_notes(fields.notes("imap"))


def _print_sign_in_step(kind: str, name: str, oauth: str | None, flow: str) -> None:
    if oauth is not None and flow == "delegated":
        click.echo(f"Next: sign it in with `replybridge oauth login {kind} {name} --device`")


def _print_notes(notes: list[str]) -> None:
    """What validation mended or suspects (an app password's spaces, host:port, the other protocol's host)."""
    for note in notes:
        click.echo(f"Note: {note}")


@imap.command("list")
@click.option("--json", "as_json", is_flag=True)
def imap_list(as_json: bool) -> None:
    with db() as session:
        rows = [{"name": s.name, "host": s.host, "port": s.port, "security": s.security, "username": s.username,
                 "sent_folder": s.sent_folder, "poll_folder": s.poll_folder}
                for s in session.exec(select(ImapServer).order_by(ImapServer.name))]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']}: {r['host']}:{r['port']} {r['security']} user={r['username']} "
                   f"sent={r['sent_folder']}{' poll=' + r['poll_folder'] if r['poll_folder'] else ''}")


@click.group()
def alias() -> None:
    """Aliases: an employee's sending identities."""


@alias.command("add")
@click.option("--employee", "employee_number", required=True, type=int)
@click.option("--description", required=True)
@click.option("--display-name", required=True)
@click.option("--from", "from_address", required=True)
@click.option("--reply-to", help="Your own address for replies as well: it goes in Reply-To after the numbered "
              "address, which is never dropped, so replies still reach the bridge.")
@click.option("--smtp", "smtp_name", help="SMTP account (default: the database-wide account).")
@click.option("--imap", "imap_name", help="IMAP server whose Sent folder gets a copy.")
@click.option("--default", "is_default", is_flag=True)
@click.option("--delay-ms", default=0, show_default=True, type=int, help="Delay between emails.")
def alias_add(employee_number: int, description: str, display_name: str, from_address: str, reply_to: str | None,
              smtp_name: str | None, imap_name: str | None, is_default: bool, delay_ms: int) -> None:
    with db() as session:
        aliases.add_alias(session, employee_number=employee_number, description=description,
                           display_name=display_name, from_address=from_address, reply_to=reply_to,
                           smtp=smtp_name, imap=imap_name, is_default=is_default, delay_ms=delay_ms)
    click.echo(f"Alias {description!r} added")


@alias.command("link")
@click.argument("description")
@click.option("--imap", "imap_name", required=True)
def alias_link(description: str, imap_name: str) -> None:
    """Link an alias to the IMAP server whose Sent folder gets its sent mail."""
    with db() as session:
        aliases.link_alias(session, description, imap_name)
    click.echo(f"Alias {description!r} linked to IMAP server {imap_name!r}")


@alias.command("list")
@click.option("--json", "as_json", is_flag=True)
def alias_list(as_json: bool) -> None:
    with db() as session:
        rows = [aliases.alias_json(session, a) for a in session.exec(select(Alias).order_by(Alias.description))]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['description']}: employee {r['employee_number']}, {r['display_name']} <{r['from']}>, "
                   f"smtp={r['smtp'] or '(database-wide)'}, imap={r['imap'] or '-'}, delay={r['delay_ms']} ms"
                   f"{' (default)' if r['default'] else ''}")


@click.group("test")
def test_group() -> None:
    """Test Connection: exit 0 and `Status: OK`, or exit 1 with the diagnosis and a hint."""


@test_group.command("smtp")
@click.argument("name")
@click.option("--employee", "employee_number", type=int, help="Try MAIL FROM this employee's numbered address.")
@click.option("--to", "to", help="Try RCPT TO this outside address (default: the test_recipient setting, else the "
              "last recipient of the account's mail), then RSET: a server that will not relay says so.")
@click.option("--send-to", "send_to", help="Send a real test message (marked as one) to this address and report "
              "DATA's answer: a refusal to send as the numbered address may show only there.")
def test_smtp_cmd(name: str, employee_number: int | None, to: str | None, send_to: str | None) -> None:
    with db() as session:
        if to:
            to = check_address(to, "--to")
        if send_to:
            send_to = check_address(send_to, "--send-to")
        report = check_smtp(session, smtp_accounts.get_smtp(session, name), employee_number, to=to,
                            send_to=send_to)
    _print_report(report)


@test_group.command("imap")
@click.argument("name")
def test_imap_cmd(name: str) -> None:
    with db() as session:
        server = imap_servers.get_imap(session, name)
    _print_report(check_imap(engine(), server))


@test_group.command("loop")
@click.argument("description")
@click.option("--timeout", default=120.0, show_default=True, type=float, help="Seconds to wait for the probe.")
def test_loop_cmd(description: str, timeout: float) -> None:
    """Send a probe from alias DESCRIPTION to its numbered address and wait until it routes back."""

    _print_report(loop_probe.run(engine(), description, timeout))


@test_group.command("report")
def test_report_cmd() -> None:
    """Send a sample error report to report_to through the database-wide account now (also while reporting
    is off: then it says so), so the route is known to work before a real condition needs it."""

    _print_report(report_mail.send_sample(engine()))


def _print_report(report: Report | LoopReport) -> None:
    for line in report.lines():
        click.echo(line)
    sys.exit(0 if report.ok else 1)


COMMANDS = [init, settings, employee, smtp, imap, alias, test_group]
