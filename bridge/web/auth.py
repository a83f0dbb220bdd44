"""Who is signed in, what they may see, and the CSRF token of their forms.

The session cookie (Starlette's, signed with a key derived from the secret key) holds a session token
the server can end (bridge.accounts.web_sessions: sign-out, deactivation and a new password end it for
good) and the CSRF token. Recruiters see their own mail and the Unassigned messages; admins see everything.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlmodel import Session

from bridge import audit
from bridge.accounts import web_sessions
from bridge.web.deps import db
from models import Employee, InboundMessage


class SignInRequired(Exception):
    """Raised by a page that needs a signed-in employee; answered with a redirect to /login."""


class Forbidden(Exception):
    """The signed-in employee may not see this: answered with 403."""


class CsrfRejected(Exception):
    """A state-changing form without the session's CSRF token: answered with 403, nothing changed."""


def sign_in(request: Request, session: Session, employee: Employee) -> None:
    """A new server-side session for the employee (the old cookie's, if any, is ended)."""
    web_sessions.end(session, request.session.get("sid"))
    request.session.clear()
    request.session.update({"sid": web_sessions.start(session, employee), "csrf": secrets.token_urlsafe(32)})


def sign_out(request: Request, session: Session) -> None:
    web_sessions.end(session, request.session.get("sid"))
    request.session.clear()


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """Dependency of every state-changing form post: the form's csrf_token must be the session's."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRejected()


@dataclass(frozen=True)
class SignedIn:
    """What the page frame shows of the signed-in employee; plain values, so an error page rendered after
    a rolled-back transaction can still show them."""

    id: int
    number: int
    name: str
    email: str
    admin: bool


def current_employee(request: Request, session: Session = Depends(db)) -> Employee:
    """The signed-in, active employee; else a redirect to the sign-in page."""
    sid = request.session.get("sid")
    employee = web_sessions.employee_of(session, sid if isinstance(sid, str) else None)
    if employee is None:
        request.session.pop("sid", None)
        raise SignInRequired()
    request.state.employee = SignedIn(employee.id, employee.number, employee.name, employee.email, employee.admin)
    audit.act_as(session, employee_actor(employee))
    return employee


def employee_actor(employee: Employee) -> str:
    """How the audit log names a person acting on the pages."""
    return f"employee {employee.number} ({employee.email})"


def require_admin(employee: Employee = Depends(current_employee)) -> Employee:
    if not employee.admin:
        raise Forbidden("this page is for admins")
    return employee


def may_see_employee_mail(me: Employee, employee_id: int | None) -> bool:
    """Recruiters see their own mail only; admins see everyone's."""
    return me.admin or (employee_id is not None and employee_id == me.id)


def may_see_message(me: Employee, row: InboundMessage) -> bool:
    """Admins see every message; recruiters their own and the Unassigned messages they triage."""
    return me.admin or row.employee_id == me.id or (row.route == "unassigned" and row.employee_id is None)


def client_address(request: Request) -> str:
    """The client's address: X-Forwarded-For counts only from the proxies the web_trusted_proxies setting names
    (uvicorn applies it), so a client cannot pick the address its failures are counted under."""
    return request.client.host if request.client else "unknown"
