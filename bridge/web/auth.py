"""Who is signed in, what they may see, and the CSRF token of their forms.

The session cookie (Starlette's, signed with a key derived from the secret key) holds the employee id,
a fingerprint of their password hash (a password change or deactivation signs every session out) and
the CSRF token. Recruiters see their own mail and the Unassigned messages; admins see everything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlmodel import Session

from bridge.web.deps import db
from models import Employee, InboundMessage


class SignInRequired(Exception):
    """Raised by a page that needs a signed-in employee; answered with a redirect to /login."""


class Forbidden(Exception):
    """The signed-in employee may not see this: answered with 403."""


class CsrfRejected(Exception):
    """A state-changing form without the session's CSRF token: answered with 403, nothing changed."""


def fingerprint(employee: Employee) -> str:
    return hashlib.sha256((employee.password_hash or "").encode()).hexdigest()[:16]


def sign_in(request: Request, employee: Employee) -> None:
    request.session.clear()
    request.session.update({"uid": employee.id, "pw": fingerprint(employee), "csrf": secrets.token_urlsafe(32)})


def sign_out(request: Request) -> None:
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
    uid = request.session.get("uid")
    employee = session.get(Employee, uid) if isinstance(uid, int) else None
    if employee is None or not employee.active or request.session.get("pw") != fingerprint(employee):
        request.session.pop("uid", None)
        raise SignInRequired()
    request.state.employee = SignedIn(employee.id, employee.number, employee.name, employee.email, employee.admin)
    return employee


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


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class SignInThrottle:
    """Repeated failed sign-ins from one address wait longer and longer before the next try is heard.

    Five failures are free (typos); after that each try must wait 2, 4, 8 ... seconds (at most 5
    minutes) after the last failure. A success clears the address. Kept in memory: one `serve`.
    """

    FREE = 5
    MAX_WAIT = 300.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_address: dict[str, _Failures] = {}

    def wait_for(self, address: str, now: float | None = None) -> float:
        """Seconds this address must still wait before a sign-in is checked (0 = go ahead)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            f = self._by_address.get(address)
            if f is None or f.count < self.FREE:
                return 0.0
            wait = min(2.0 ** (f.count - self.FREE + 1), self.MAX_WAIT)
            return max(0.0, f.last + wait - now)

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            f = self._by_address.setdefault(address, _Failures())
            if now - f.last > 3600:
                f.count = 0
            f.count += 1
            f.last = now
            if len(self._by_address) > 10_000:  # bound memory under a spray of addresses
                oldest = min(self._by_address, key=lambda a: self._by_address[a].last)
                del self._by_address[oldest]

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._by_address.pop(address, None)
