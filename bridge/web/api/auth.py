"""Bearer-token authentication of the API and what each token may touch.

An admin token acts for every employee. An employee token acts as a recruiter does on the pages:
its employee's own mail plus the Unassigned messages (bridge.web.auth.may_see_message), even when
that employee is an admin on the pages: a token handed to a script gets no more than it needs.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from bridge import audit
from bridge.accounts import api_tokens, attempts
from bridge.accounts.api_tokens import Principal
from bridge.web.auth import client_address
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


class TooManyFailures(Exception):
    """This address sent too many wrong tokens: answered 429 with Retry-After, nothing checked."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"too many wrong tokens from this address: try again in {int(wait) + 1} seconds")
        self.retry_after = int(wait) + 1


MISSING = "a bearer token is needed: Authorization: Bearer TOKEN (replybridge token create)"
INVALID = "the bearer token is not valid (unknown, revoked, or its employee is inactive)"
FREE_WRONG_TOKENS = 20  # a script with a stale token, not a guesser (tokens are 256 random bits)


def _check(session: Session, token: str | None, address: str) -> Principal:
    if not token:
        raise Unauthorized(MISSING, invalid=False)
    found = api_tokens.authenticate(session, token)
    if found is None:  # only wrong tokens are counted: a valid one costs no extra query
        key = f"api token address {address}"
        wait = attempts.blocked_for(session, key)
        if wait > 0:
            raise TooManyFailures(wait)
        attempts.failed(session, key, FREE_WRONG_TOKENS)
        session.commit()  # counted, although the request fails
        raise Unauthorized(INVALID, invalid=True)
    if session.dirty:  # last_used_at moved: keep it even when the request itself fails
        session.commit()
    return found


def principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
              session: Session = Depends(db)) -> Principal:
    """Dependency of every route: who the request acts as (and whom the audit log names)."""
    found = _check(session, credentials.credentials if credentials else None, client_address(request))
    audit.act_as(session, f"token {found.token_name}" + (f" (employee {found.employee.number})" if found.employee
                                                          else " (admin)"))
    return found


def principal_of(request: Request) -> Principal:
    """The same check outside a route (error handlers), in a session of its own."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    with session_scope(request.app.state.engine) as session:
        return _check(session, token.strip() if scheme.lower() == "bearer" else None, client_address(request))


def may_see_message(p: Principal, row: InboundMessage) -> bool:
    return p.admin or (row.employee_id is not None and row.employee_id == p.employee_id) or (
        row.route == "unassigned" and row.employee_id is None)


def may_see_mail(p: Principal, row: OutboundMessage) -> bool:
    return p.admin or (row.employee_id is not None and row.employee_id == p.employee_id)
