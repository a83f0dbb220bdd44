"""Aliases: an employee's sending identities (description, display name, from, reply-to, SMTP account or
the database-wide one, linked IMAP server, default flag, delay between emails) and which one a send uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func
from sqlmodel import Session, select

from bridge import audit
from bridge.accounts.employees import get_employee
from bridge.accounts.imap_servers import get_imap
from bridge.accounts.smtp_accounts import get_smtp
from bridge.accounts.validation import about, check_name
from bridge.errors import FieldError, InputError, NotFound
from bridge.input_checks import check_address
from models import Alias, Employee, ImapServer, SmtpAccount

T = TypeVar("T")


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
    alias = _save_alias(session, Alias(), fields)
    audit.record(session, "account", f"alias {alias.description}", "added")
    return alias


def update_alias(session: Session, alias_id: int, fields: AliasFields) -> Alias:
    alias = session.get(Alias, alias_id)
    if alias is None:
        raise NotFound(f"no alias with id {alias_id}")
    alias = _save_alias(session, alias, fields)
    audit.record(session, "account", f"alias {alias.description}", "changed")
    return alias


def _found(field: str, lookup: Callable[[], T]) -> T:
    """A look-up by a name the user gave: a miss is about that field (the CLI prints it the same)."""
    try:
        return lookup()
    except NotFound as err:
        raise FieldError(field, str(err)) from None


def _save_alias(session: Session, alias: Alias, f: AliasFields) -> Alias:
    employee = _found("employee", lambda: get_employee(session, f.employee_number))
    with about("description"):
        description = check_name(f.description, "description")
    same = select(Alias).where(func.lower(Alias.description) == description.lower())
    if alias.id is not None:
        same = same.where(Alias.id != alias.id)
    if session.exec(same).first():
        raise FieldError("description", f"an alias described {description!r} exists already")
    if f.delay_ms < 0 or f.delay_ms > 3_600_000:
        raise FieldError("delay_ms", "delay between emails must be between 0 and 3600000 ms")
    with about("display_name"):
        display_name = check_name(f.display_name, "display name")
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
    audit.record(session, "account", f"alias {alias.description}", f"linked to the IMAP server {imap}")
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


def aliases_of(session: Session, employee: Employee) -> list[Alias]:
    """The employee's aliases, the default first: the choices of a page that sends as them."""
    return list(session.exec(select(Alias).where(Alias.employee_id == employee.id)
                             .order_by(Alias.is_default.desc(), Alias.description)).all())


def alias_json(session: Session, a: Alias) -> dict[str, object]:
    employee = session.get(Employee, a.employee_id)
    smtp = session.get(SmtpAccount, a.smtp_account_id) if a.smtp_account_id else None
    imap = session.get(ImapServer, a.imap_server_id) if a.imap_server_id else None
    return {"description": a.description, "employee_number": employee.number if employee else None,
            "display_name": a.display_name, "from": a.from_address, "reply_to": a.reply_to,
            "smtp": smtp.name if smtp else None, "imap": imap.name if imap else None,
            "default": a.is_default, "delay_ms": a.delay_ms}
