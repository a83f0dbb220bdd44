"""Employees, SMTP accounts, IMAP servers and aliases: creation with validation, and look-ups.

Shared by the CLI and (later) the admin pages, so a bad port or a duplicate description gets the
same clear error everywhere, and nothing is stored until every field is valid.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from bridge import secrets
from bridge.compose import check_address, refuse_line_breaks
from bridge.connections import SECURITY_MODES
from bridge.errors import InputError, NotFound
from models import Alias, Employee, ImapServer, SmtpAccount


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
    if ":" in host and not host.startswith("["):
        raise InputError(f"host {host!r} holds a port: give the port with --port")
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
        raise InputError("employee number must be between 0 and 999999999")
    if session.exec(select(Employee).where(Employee.number == number)).first():
        raise InputError(f"employee number {number} exists already")
    employee = Employee(number=number, name=_name(name, "name"), email=check_address(email, "email"),
                        admin=admin, active=active, delivery=_delivery(delivery))
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
    """The fields SMTP accounts and IMAP servers share, validated once for both."""

    name: str
    host: str
    port: int
    security: str
    username: str | None
    password: str | None
    timeout: float
    ca_file: str | None

    def validated(self) -> ServerFields:
        if self.password is not None and not self.username:
            raise InputError("a password needs a --username")
        if self.password is not None:
            refuse_line_breaks(password=self.password)
        return ServerFields(_name(self.name, "name"), _host(self.host), _port(self.port),
                            _security(self.security), self.username.strip() if self.username else None,
                            self.password, _timeout(self.timeout), self.ca_file)


def add_smtp(session: Session, fields: ServerFields, *, is_default: bool = False,
             provider_files_sent: bool = False) -> SmtpAccount:
    f = fields.validated()
    if session.exec(select(SmtpAccount).where(SmtpAccount.name == f.name)).first():
        raise InputError(f"an SMTP account named {f.name!r} exists already")
    if is_default:
        for other in session.exec(select(SmtpAccount).where(SmtpAccount.is_default)):
            other.is_default = False
            session.add(other)
    account = SmtpAccount(name=f.name, host=f.host, port=f.port, security=f.security, username=f.username,
                          secret=secrets.encrypt(f.password) if f.password else None, timeout=f.timeout,
                          ca_file=f.ca_file, is_default=is_default, provider_files_sent=provider_files_sent)
    session.add(account)
    session.flush()
    return account


# Names servers commonly give the Sent folder; polling one of them would route our own mail back in.
SENT_NAMES = ("sent", "sent items", "sent messages", "sent mail", "[gmail]/sent mail", "inbox/sent", "gesendet",
              "gesendete elemente", "envoyés", "éléments envoyés", "enviados", "elementos enviados")


def _refuse_self_loop(sent_folder: str, poll_folder: str | None) -> None:
    if poll_folder and (poll_folder.lower() in SENT_NAMES or poll_folder == sent_folder):
        raise InputError(f"the poll folder {poll_folder!r} is a Sent folder: polling it would take the bridge's own "
                         "sent mail in as replies; poll the mailbox numbered addresses are delivered to (e.g. INBOX)")


def _poll_after(value: str) -> str:
    from bridge.imap_poller import AfterFetch

    try:
        AfterFetch.parse(value)
    except ValueError as err:
        raise InputError(str(err)) from None
    return value


def add_imap(session: Session, fields: ServerFields, *, sent_folder: str = "auto",
             poll_folder: str | None = None, poll_after: str = "seen") -> ImapServer:
    f = fields.validated()
    _refuse_self_loop(sent_folder, poll_folder)
    poll_after = _poll_after(poll_after)
    if not f.username or f.password is None:
        raise InputError("an IMAP server needs --username and a password (--password-stdin or --password-env)")
    if session.exec(select(ImapServer).where(ImapServer.name == f.name)).first():
        raise InputError(f"an IMAP server named {f.name!r} exists already")
    server = ImapServer(name=f.name, host=f.host, port=f.port, security=f.security, username=f.username,
                        secret=secrets.encrypt(f.password), timeout=f.timeout, ca_file=f.ca_file,
                        sent_folder=_name(sent_folder, "sent folder"),
                        poll_folder=_name(poll_folder, "poll folder") if poll_folder else None,
                        poll_after=poll_after)
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


def default_smtp(session: Session) -> SmtpAccount | None:
    """The database-wide account for automated mail and aliases without their own."""
    return session.exec(select(SmtpAccount).where(SmtpAccount.is_default)).first()


# --- aliases -----------------------------------------------------------------------------------

def add_alias(session: Session, *, employee_number: int, description: str, display_name: str,
              from_address: str, reply_to: str | None = None, smtp: str | None = None,
              imap: str | None = None, is_default: bool = False, delay_ms: int = 0) -> Alias:
    employee = get_employee(session, employee_number)
    description = _name(description, "description")
    if session.exec(select(Alias).where(func.lower(Alias.description) == description.lower())).first():
        raise InputError(f"an alias described {description!r} exists already")
    if delay_ms < 0 or delay_ms > 3_600_000:
        raise InputError("delay between emails must be between 0 and 3600000 ms")
    alias = Alias(employee_id=employee.id, description=description,
                  display_name=_name(display_name, "display name"),
                  from_address=check_address(from_address, "from address"),
                  reply_to=check_address(reply_to, "reply-to address") if reply_to else None,
                  smtp_account_id=get_smtp(session, smtp).id if smtp else None,
                  imap_server_id=get_imap(session, imap).id if imap else None,
                  delay_ms=delay_ms)
    existing = session.exec(select(Alias).where(Alias.employee_id == employee.id)).all()
    alias.is_default = is_default or not existing
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
