"""Employee passwords for the web pages: argon2id hashes (argon2-cffi), never the password itself."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session

from bridge import audit
from bridge.accounts import employees, web_sessions
from bridge.errors import InputError
from bridge.input_checks import refuse_line_breaks
from models import Employee

MIN_LENGTH = 10
_hasher = PasswordHasher()
# verified against when the email is unknown, so a wrong email costs as long as a wrong password
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def check_strength(password: str) -> str:
    refuse_line_breaks(password=password)
    if len(password) < MIN_LENGTH:
        raise InputError(f"a password needs at least {MIN_LENGTH} characters")
    return password


def set_password(session: Session, number: int, password: str) -> Employee:
    employee = employees.get_employee(session, number)
    employee.password_hash = _hasher.hash(check_strength(password))
    session.add(employee)
    web_sessions.end_all(session, employee.id)  # a new password signs every browser out
    audit.record(session, "account", f"employee {number}", "new password")
    return employee


def verify(employee: Employee | None, password: str) -> bool:
    """True when the password is the employee's; the same work is done for an unknown employee."""
    stored = employee.password_hash if employee is not None and employee.password_hash else None
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
