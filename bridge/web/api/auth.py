"""Bearer-token authentication of the API and what each token may touch.

An admin token acts for every employee. An employee token acts as a recruiter does on the pages:
its employee's own mail plus the Unassigned messages (bridge.web.auth.may_see_message), even when
that employee is an admin on the pages: a token handed to a script gets no more than it needs.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from bridge.accounts import api_tokens
from bridge.accounts.api_tokens import Principal
from bridge.web.deps import db
from models import InboundMessage, OutboundMessage
from models.db import session_scope

bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="A token from `replybridge token create NAME (--employee N | --admin)`.")


class Unauthorized(Exception):
    """No token, or not a valid one: answered 401 with `WWW-Authenticate: Bearer`."""

    def __init__(self, message: str, invalid: bool) -> None:
        super().__init__(message)
        self.invalid = invalid


MISSING = "a bearer token is needed: Authorization: Bearer TOKEN (replybridge token create)"
INVALID = "the bearer token is not valid (unknown, revoked, or its employee is inactive)"


def _check(session: Session, token: str | None) -> Principal:
    if not token:
        raise Unauthorized(MISSING, invalid=False)
    found = api_tokens.authenticate(session, token)
    if found is None:
        raise Unauthorized(INVALID, invalid=True)
    if session.dirty:  # last_used_at moved: keep it even when the request itself fails
        session.commit()
    return found


def principal(credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
              session: Session = Depends(db)) -> Principal:
    """Dependency of every route: who the request acts as."""
    return _check(session, credentials.credentials if credentials else None)


def principal_of(request: Request) -> Principal:
    """The same check outside a route (error handlers), in a session of its own."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    with session_scope(request.app.state.engine) as session:
        return _check(session, token.strip() if scheme.lower() == "bearer" else None)


def may_see_message(p: Principal, row: InboundMessage) -> bool:
    return p.admin or (row.employee_id is not None and row.employee_id == p.employee_id) or (
        row.route == "unassigned" and row.employee_id is None)


def may_see_mail(p: Principal, row: OutboundMessage) -> bool:
    return p.admin or (row.employee_id is not None and row.employee_id == p.employee_id)
