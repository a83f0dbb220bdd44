"""Employees, SMTP accounts, IMAP servers and aliases: creation and editing with validation, and look-ups.

Shared by the CLI and the admin pages, so a bad port or a duplicate description gets the same clear
error everywhere, and nothing is stored until every field is valid. Each error names the field it is
about (FieldError), so a form can show it beside that field; the CLI prints it as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func
from sqlmodel import Session, select

from bridge import secrets, setup_hints
from bridge.compose import check_address, refuse_line_breaks
from bridge.connections import SECURITY_MODES
from bridge.errors import FieldError, InputError, NotFound
from models import Alias, Employee, ImapServer, SmtpAccount

T = TypeVar("T")


@contextmanager
def about(field: str) -> Iterator[None]:
    """An InputError raised inside is about `field` (the form field, named like the CLI option)."""
    try:
        yield
    except FieldError:
        raise
    except InputError as err:
        raise FieldError(field, str(err)) from None


def _port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise InputError(f"port {port} is out of range (1-65535)")
    return port


def _security(mode: str) -> str:
    if mode not in SECURITY_MODES:
        raise InputError(f"security {mode!r} is not one of: {', '.join(SECURITY_MODES)}")
    return mode


def _host(host: str) -> str:
    host = host.strip()
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise InputError(f"host {host!r} is not a host name or address")
    return host


def _timeout(seconds: float) -> float:
    if not 0 < seconds <= 600:
        raise InputError("timeout must be between 0 and 600 seconds")
    return seconds


def _name(value: str, what: str) -> str:
    value = value.strip()
    refuse_line_breaks(**{what: value})
    if not value:
        raise InputError(f"the {what} cannot be empty")
    return value


def _ca_file(path: str | None) -> str | None:
    if path and not Path(path).is_file():
        raise InputError(f"CA file {path!r} does not exist or is not a file")
    return path or None


# --- employees -------------------------------------------------------------------------------

DELIVERY_MODES = ("forward", "imap", "none")


def _delivery(mode: str) -> str:
    if mode not in DELIVERY_MODES:
        raise InputError(f"delivery {mode!r} is not one of: {', '.join(DELIVERY_MODES)}")
    return mode


def set_delivery(session: Session, number: int, mode: str) -> Employee:
    employee = get_employee(session, number)
    employee.delivery = _delivery(mode)
    session.add(employee)
    return employee


def set_active(session: Session, number: int, active: bool) -> Employee:
    employee = get_employee(session, number)
    employee.active = active
    session.add(employee)
    return employee


def add_employee(session: Session, number: int, name: str, email: str, *, admin: bool = False,
                 active: bool = True, delivery: str = "forward") -> Employee:
    if number < 0 or number > 999_999_999:
        raise FieldError("number", "employee number must be between 0 and 999999999")
    if session.exec(select(Employee).where(Employee.number == number)).first():
        raise FieldError("number", f"employee number {number} exists already")
    employee = Employee(number=number, active=active)
    return _save_employee(session, employee, name, email, admin, delivery)


def update_employee(session: Session, number: int, *, name: str, email: str, admin: bool,
                    delivery: str) -> Employee:
    """Edit an employee; the number stays (it is in every numbered address already sent)."""
    return _save_employee(session, get_employee(session, number), name, email, admin, delivery)


def _save_employee(session: Session, employee: Employee, name: str, email: str, admin: bool,
                   delivery: str) -> Employee:
    with about("name"):
        name = _name(name, "name")
    with about("email"):
        email = check_address(email, "email")
    with about("delivery"):
        delivery = _delivery(delivery)
    employee.name, employee.email, employee.admin, employee.delivery = name, email, admin, delivery
    session.add(employee)
    session.flush()
    return employee


def get_employee(session: Session, number: int) -> Employee:
    employee = session.exec(select(Employee).where(Employee.number == number)).first()
    if employee is None:
        raise NotFound(f"no employee number {number}")
    return employee


def employee_json(e: Employee) -> dict[str, object]:
    return {"number": e.number, "name": e.name, "email": e.email, "active": e.active, "admin": e.admin,
            "delivery": e.delivery}


# --- SMTP accounts and IMAP servers ------------------------------------------------------------

@dataclass(frozen=True)
class ServerFields:
    """The fields SMTP accounts and IMAP servers share, validated once for both.

    Validation also mends what people commonly paste (bridge.setup_hints): `host:port` in the host
    field is split (port may then be None), an app password shown in groups loses its spaces; each
    mend, and a host that looks like the other protocol's, is a note for the person (`notes`).
    """

    name: str
    host: str
    port: int | None
    security: str
    username: str | None
    password: str | None
    timeout: float
    ca_file: str | None

    def validated(self, protocol: str = "smtp") -> ServerFields:
        """The values to store; raises FieldError naming the field of the first bad value."""
        return self._checked(protocol)[0]

    def notes(self, protocol: str = "smtp") -> list[str]:
        """What validation changed or suspects, for the person who typed it (never the password)."""
        return self._checked(protocol)[1]

    def _checked(self, protocol: str) -> tuple[ServerFields, list[str]]:
        notes: list[str] = []
        password = self.password
        if password is not None and not self.username:
            raise FieldError("username", "a password needs a --username")
        if password is not None:
            with about("password"):
                refuse_line_breaks(password=password)
            password, note = setup_hints.app_password(password)
            notes += [note] if note else []
        with about("name"):
            name = _name(self.name, "name")
        with about("host"):
            host, port = setup_hints.split_host_port(_host(self.host), self.port)
        if port is None:
            raise FieldError("port", "give the port with --port (or as --host HOST:PORT)")
        if self.host.strip() not in (host, f"[{host}]"):
            notes.append(f"host {self.host.strip()!r} split into host {host} and port {port}")
        with about("port"):
            port = _port(port)
        mix = setup_hints.wrong_protocol(host, port, protocol)
        if mix and mix.refuse:
            raise FieldError(mix.field, mix.text)
        notes += [mix.text] if mix else []
        with about("security"):
            security = _security(self.security)
        with about("timeout"):
            timeout = _timeout(self.timeout)
        with about("ca_file"):
            ca_file = _ca_file(self.ca_file)
        fields = ServerFields(name, host, port, security, self.username.strip() if self.username else None,
                              password, timeout, ca_file)
        return fields, notes


def _unique_name(session: Session, model: type[SmtpAccount] | type[ImapServer], name: str, own_id: int | None,
                 what: str) -> None:
    query = select(model).where(model.name == name)
    if own_id is not None:
        query = query.where(model.id != own_id)
    if session.exec(query).first():
        raise FieldError("name", f"{what} named {name!r} exists already")


def add_smtp(session: Session, fields: ServerFields, *, is_default: bool = False,
             provider_files_sent: bool = False, oauth: str | None = None, oauth_flow: str = "delegated") -> SmtpAccount:
    if oauth is not None:
        _no_password_with_oauth(fields)
    account = _save_smtp(session, SmtpAccount(), fields, is_default, provider_files_sent)
    return use_oauth(session, account, oauth, oauth_flow) if oauth is not None else account


def _no_password_with_oauth(fields: ServerFields) -> None:
    if fields.password is not None:
        raise FieldError("password", "an account that signs in with --oauth has no password: give one or the other")


def use_oauth(session: Session, account: SmtpAccount | ImapServer, client_name: str, flow: str):  # noqa: ANN201
    """The account signs in with XOAUTH2 through the named OAuth client: delegated (a person signs in:
    `oauth login`) or app (client credentials, no person: Microsoft 365 SMTP.SendAsApp/IMAP.AccessAsApp)."""
    from bridge.oauth.clients import get_client
    from bridge.oauth.providers import FLOWS

    if flow not in FLOWS:
        raise FieldError("oauth_flow", f"--oauth-flow {flow!r} is not one of: {', '.join(FLOWS)}")
    with about("oauth"):
        client = get_client(session, client_name)
    if not account.username:
        raise FieldError("username", "an OAuth account needs --username: the mailbox it signs in as")
    account.oauth_client_id, account.oauth_flow, account.secret = client.id, flow, None
    session.add(account)
    session.flush()
    return account


def update_smtp(session: Session, account_id: int, fields: ServerFields, *, is_default: bool,
                provider_files_sent: bool) -> SmtpAccount:
    """Edit an account. No password (None) keeps the stored one: forms never show it, so empty means
    unchanged; without a username the stored password goes too (it could never be used)."""
    return _save_smtp(session, smtp_by_id(session, account_id), fields, is_default, provider_files_sent)


def _save_smtp(session: Session, account: SmtpAccount, fields: ServerFields, is_default: bool,
               provider_files_sent: bool) -> SmtpAccount:
    f = fields.validated("smtp")
    _unique_name(session, SmtpAccount, f.name, account.id, "an SMTP account")
    if is_default:
        others = select(SmtpAccount).where(SmtpAccount.is_default)
        if account.id is not None:
            others = others.where(SmtpAccount.id != account.id)
        for other in session.exec(others):
            other.is_default = False
            session.add(other)
    if f.password:
        account.secret = secrets.encrypt(f.password)
    elif not f.username or account.id is None:
        account.secret = None
    account.name, account.host, account.port, account.security = f.name, f.host, f.port, f.security
    account.username, account.timeout, account.ca_file = f.username, f.timeout, f.ca_file
    account.is_default, account.provider_files_sent = is_default, provider_files_sent
    session.add(account)
    session.flush()
    return account


# Names servers commonly give the Sent folder; polling one of them would route our own mail back in.
SENT_NAMES = ("sent", "sent items", "sent messages", "sent mail", "[gmail]/sent mail", "inbox/sent", "gesendet",
              "gesendete elemente", "envoyés", "éléments envoyés", "enviados", "elementos enviados")


def _refuse_self_loop(sent_folder: str, poll_folder: str | None) -> None:
    if poll_folder and (poll_folder.lower() in SENT_NAMES or poll_folder == sent_folder):
        raise FieldError("poll_folder",
                         f"the poll folder {poll_folder!r} is a Sent folder: polling it would take the bridge's own "
                         "sent mail in as replies; poll the mailbox numbered addresses are delivered to (e.g. INBOX)")


def _poll_after(value: str) -> str:
    from bridge.imap_poller import AfterFetch

    try:
        AfterFetch.parse(value)
    except ValueError as err:
        raise FieldError("poll_after", str(err)) from None
    return value


def add_imap(session: Session, fields: ServerFields, *, sent_folder: str = "auto",
             poll_folder: str | None = None, poll_after: str = "seen", oauth: str | None = None,
             oauth_flow: str = "delegated") -> ImapServer:
    if oauth is not None:
        _no_password_with_oauth(fields)
    server = _save_imap(session, ImapServer(), fields, sent_folder, poll_folder, poll_after, oauth is not None)
    return use_oauth(session, server, oauth, oauth_flow) if oauth is not None else server


def update_imap(session: Session, server_id: int, fields: ServerFields, *, sent_folder: str,
                poll_folder: str | None, poll_after: str) -> ImapServer:
    """Edit a server. No password (None) keeps the stored one. A changed poll folder is watched from the
    next start of `serve` (its watchers are started then)."""
    return _save_imap(session, imap_by_id(session, server_id), fields, sent_folder, poll_folder, poll_after)


def _save_imap(session: Session, server: ImapServer, fields: ServerFields, sent_folder: str,
               poll_folder: str | None, poll_after: str, oauth: bool = False) -> ImapServer:
    f = fields.validated("imap")
    with about("sent_folder"):
        sent_folder = _name(sent_folder, "sent folder")
    with about("poll_folder"):
        poll_folder = _name(poll_folder, "poll folder") if poll_folder else None
    _refuse_self_loop(sent_folder, poll_folder)
    poll_after = _poll_after(poll_after)
    needs = "an IMAP server needs --username and a password (--password-stdin or --password-env)"
    if not f.username:
        raise FieldError("username", needs)
    if f.password is None and server.secret is None and not oauth and server.oauth_client_id is None:
        raise FieldError("password", needs)
    _unique_name(session, ImapServer, f.name, server.id, "an IMAP server")
    if f.password is not None:
        server.secret = secrets.encrypt(f.password)
    server.name, server.host, server.port, server.security = f.name, f.host, f.port, f.security
    server.username, server.timeout, server.ca_file = f.username, f.timeout, f.ca_file
    server.sent_folder, server.poll_folder, server.poll_after = sent_folder, poll_folder, poll_after
    session.add(server)
    session.flush()
    return server


def get_smtp(session: Session, name: str) -> SmtpAccount:
    account = session.exec(select(SmtpAccount).where(SmtpAccount.name == name)).first()
    if account is None:
        raise NotFound(f"no SMTP account named {name!r}")
    return account


def get_imap(session: Session, name: str) -> ImapServer:
    server = session.exec(select(ImapServer).where(ImapServer.name == name)).first()
    if server is None:
        raise NotFound(f"no IMAP server named {name!r}")
    return server


def smtp_by_id(session: Session, account_id: int) -> SmtpAccount:
    account = session.get(SmtpAccount, account_id)
    if account is None:
        raise NotFound(f"no SMTP account with id {account_id}")
    return account


def imap_by_id(session: Session, server_id: int) -> ImapServer:
    server = session.get(ImapServer, server_id)
    if server is None:
        raise NotFound(f"no IMAP server with id {server_id}")
    return server


def default_smtp(session: Session) -> SmtpAccount | None:
    """The database-wide account for automated mail and aliases without their own."""
    return session.exec(select(SmtpAccount).where(SmtpAccount.is_default)).first()


# --- aliases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AliasFields:
    """What an alias is made of, as the CLI options and the form give it (accounts by name)."""

    employee_number: int
    description: str
    display_name: str
    from_address: str
    reply_to: str | None = None
    smtp: str | None = None
    imap: str | None = None
    is_default: bool = False
    delay_ms: int = 0


def add_alias(session: Session, *, employee_number: int, description: str, display_name: str,
              from_address: str, reply_to: str | None = None, smtp: str | None = None,
              imap: str | None = None, is_default: bool = False, delay_ms: int = 0) -> Alias:
    fields = AliasFields(employee_number, description, display_name, from_address, reply_to, smtp, imap,
                         is_default, delay_ms)
    return _save_alias(session, Alias(), fields)


def update_alias(session: Session, alias_id: int, fields: AliasFields) -> Alias:
    alias = session.get(Alias, alias_id)
    if alias is None:
        raise NotFound(f"no alias with id {alias_id}")
    return _save_alias(session, alias, fields)


def _found(field: str, lookup: Callable[[], T]) -> T:
    """A look-up by a name the user gave: a miss is about that field (the CLI prints it the same)."""
    try:
        return lookup()
    except NotFound as err:
        raise FieldError(field, str(err)) from None


def _save_alias(session: Session, alias: Alias, f: AliasFields) -> Alias:
    employee = _found("employee", lambda: get_employee(session, f.employee_number))
    with about("description"):
        description = _name(f.description, "description")
    same = select(Alias).where(func.lower(Alias.description) == description.lower())
    if alias.id is not None:
        same = same.where(Alias.id != alias.id)
    if session.exec(same).first():
        raise FieldError("description", f"an alias described {description!r} exists already")
    if f.delay_ms < 0 or f.delay_ms > 3_600_000:
        raise FieldError("delay_ms", "delay between emails must be between 0 and 3600000 ms")
    with about("display_name"):
        display_name = _name(f.display_name, "display name")
    with about("from_address"):
        from_address = check_address(f.from_address, "from address")
    with about("reply_to"):
        reply_to = check_address(f.reply_to, "reply-to address") if f.reply_to else None
    smtp_id = _found("smtp", lambda: get_smtp(session, f.smtp).id) if f.smtp else None
    imap_id = _found("imap", lambda: get_imap(session, f.imap).id) if f.imap else None
    alias.employee_id, alias.description, alias.display_name = employee.id, description, display_name
    alias.from_address, alias.reply_to, alias.delay_ms = from_address, reply_to, f.delay_ms
    alias.smtp_account_id, alias.imap_server_id = smtp_id, imap_id
    others = select(Alias).where(Alias.employee_id == employee.id)
    if alias.id is not None:
        others = others.where(Alias.id != alias.id)
    existing = session.exec(others).all()
    alias.is_default = f.is_default or not existing
    if alias.is_default:
        for other in existing:
            other.is_default = False
            session.add(other)
    session.add(alias)
    session.flush()
    return alias


def get_alias(session: Session, description: str) -> Alias:
    alias = session.exec(select(Alias).where(func.lower(Alias.description) == description.strip().lower())).first()
    if alias is None:
        raise NotFound(f"no alias described {description!r}")
    return alias


def link_alias(session: Session, description: str, imap: str) -> Alias:
    alias = get_alias(session, description)
    alias.imap_server_id = get_imap(session, imap).id
    session.add(alias)
    return alias


def alias_for(session: Session, employee: Employee, description: str | None) -> Alias | None:
    """The named alias (which must be the employee's), else the employee's default alias, else None."""
    if description:
        alias = get_alias(session, description)
        if alias.employee_id != employee.id:
            raise InputError(f"alias {alias.description!r} belongs to another employee")
        return alias
    aliases = session.exec(select(Alias).where(Alias.employee_id == employee.id).order_by(Alias.id)).all()
    return next((a for a in aliases if a.is_default), aliases[0] if aliases else None)


def alias_json(session: Session, a: Alias) -> dict[str, object]:
    employee = session.get(Employee, a.employee_id)
    smtp = session.get(SmtpAccount, a.smtp_account_id) if a.smtp_account_id else None
    imap = session.get(ImapServer, a.imap_server_id) if a.imap_server_id else None
    return {"description": a.description, "employee_number": employee.number if employee else None,
            "display_name": a.display_name, "from": a.from_address, "reply_to": a.reply_to,
            "smtp": smtp.name if smtp else None, "imap": imap.name if imap else None,
            "default": a.is_default, "delay_ms": a.delay_ms}
