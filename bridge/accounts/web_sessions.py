"""Signed-in browser sessions the server can end: the cookie carries a random token, the database its
SHA-256 (like API tokens), so sign-out, deactivation or a new password end a session for good and a
copied cookie stops working at once."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import update
from sqlmodel import Session, select

from models import Employee, WebSession, aware, utcnow

LIFETIME = dt.timedelta(hours=12)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(session: Session, employee: Employee) -> str:
    """A new session for the employee; returns the token for the cookie (shown nowhere else)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(WebSession(token_hash=_hash(token), employee_id=employee.id, created_at=now,
                           expires_at=now + LIFETIME))
    return token


def employee_of(session: Session, token: str | None) -> Employee | None:
    """The active employee of a live session, or None (unknown, ended, expired, or deactivated)."""
    if not token:
        return None
    found = session.exec(select(WebSession).where(WebSession.token_hash == _hash(token))).first()
    if found is None or found.ended_at is not None or aware(found.expires_at) <= utcnow():
        return None
    employee = session.get(Employee, found.employee_id)
    return employee if employee is not None and employee.active else None


def end(session: Session, token: str | None) -> None:
    """Sign-out: this session is over, whoever holds a copy of its cookie."""
    if token:
        session.exec(update(WebSession).where(WebSession.token_hash == _hash(token), WebSession.ended_at.is_(None))
                     .values(ended_at=utcnow()))


def end_all(session: Session, employee_id: int) -> None:
    """Every session of the employee is over (deactivation, a new password)."""
    session.exec(update(WebSession).where(WebSession.employee_id == employee_id, WebSession.ended_at.is_(None))
                 .values(ended_at=utcnow()))
