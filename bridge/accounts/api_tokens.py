"""Bearer tokens of the HTTP API: made once, shown once, stored only as their SHA-256.

A token is 256 random bits, so looking it up by its hash is safe (nobody can aim a guess at a
stored hash) and the comparison inside the database leaks nothing useful. An employee token acts
as that employee (who must still be active); an admin token acts for every employee.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlmodel import Session, select

from bridge import audit
from bridge.accounts import employees
from bridge.errors import InputError, NotFound
from models import ApiToken, Employee, aware, utcnow

PREFIX = "rb_"
MAX_NAME = 200
# last_used_at is a hint for people, not an audit trail: at most one write per token per minute
TOUCH_EVERY = dt.timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an admin token, or one employee's token."""

    token_name: str
    admin: bool
    employee: Employee | None  # set for employee tokens

    @property
    def employee_id(self) -> int | None:
        return self.employee.id if self.employee else None


def create(session: Session, name: str, *, employee_number: int | None = None, admin: bool = False) -> str:
    """Store a new token's hash and return the token itself (it is never shown again)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InputError(f"a token name needs 1 to {MAX_NAME} characters")
    if admin == (employee_number is not None):
        raise InputError("give exactly one of --employee N (acts as that employee) or --admin (acts for everyone)")
    if session.exec(select(ApiToken.id).where(ApiToken.name == name)).first() is not None:
        raise InputError(f"a token named {name!r} exists already; revoke it first or choose another name")
    employee_id = None
    if employee_number is not None:
        employee = employees.get_employee(session, employee_number)
        if not employee.active:
            raise InputError(f"employee {employee_number} is inactive")
        employee_id = employee.id
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(token), employee_id=employee_id, admin=admin))
    session.flush()
    audit.record(session, "token", f"token {name}",
                 "created for every employee (admin)" if admin else f"created for employee {employee_number}")
    return token


def revoke(session: Session, name: str) -> None:
    row = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None:
        raise NotFound(f"no token named {name!r}")
    session.delete(row)
    audit.record(session, "token", f"token {name}", "revoked")


def token_json(row: ApiToken, employee_number: int | None) -> dict[str, object]:
    """What `token list` shows: never the token, nor its hash."""
    return {"name": row.name, "admin": row.admin, "employee_number": employee_number,
            "created_at": row.created_at.isoformat(),
            "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None}


def list_tokens(session: Session) -> list[dict[str, object]]:
    rows = session.exec(select(ApiToken, Employee.number).join(Employee, Employee.id == ApiToken.employee_id,
                                                               isouter=True).order_by(ApiToken.name)).all()
    return [token_json(row, number) for row, number in rows]


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal of a presented token, or None (unknown token, or its employee is gone or inactive)."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None:
        return None
    employee = None
    if not row.admin:
        employee = session.get(Employee, row.employee_id) if row.employee_id else None
        if employee is None or not employee.active:
            return None
    now = utcnow()
    if row.last_used_at is None or aware(row.last_used_at) + TOUCH_EVERY <= now:
        row.last_used_at = now
        session.add(row)
    return Principal(token_name=row.name, admin=row.admin, employee=employee)
