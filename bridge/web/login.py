"""Sign in and sign out. A wrong email and a wrong password get the same answer, in the same time."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import Session, select

from bridge import audit
from bridge.accounts import attempts, passwords, web_sessions
from bridge.web import auth
from bridge.web.deps import db
from bridge.web.templating import render
from models import Employee

router = APIRouter()
WRONG = "Wrong email or password"
FREE_PER_ACCOUNT = 5  # typos; then 2, 4, 8 ... s between tries (bridge.accounts.attempts)
FREE_PER_ADDRESS = 20  # more: people behind one address with a guesser are not locked out for long


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if not target:
        return "/unassigned"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/unassigned"
    return target


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/unassigned", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None, session: Session = Depends(db)) -> Response:  # noqa: A002
    return render(request, session, "login.html", {"next": _safe_next(next), "error": None, "email": ""})


@router.post("/login", dependencies=[Depends(auth.check_csrf)])
def login(request: Request, email: str = Form(""), password: str = Form(""), next: str = Form(""),  # noqa: A002
          session: Session = Depends(db)) -> Response:
    keys = (f"sign-in account {email.strip().lower()[:200]}", f"sign-in address {auth.client_address(request)}")
    wait = max(attempts.wait_before(session, keys[0], FREE_PER_ACCOUNT),
               attempts.wait_before(session, keys[1], FREE_PER_ADDRESS))
    session.commit()  # counted before the password is checked, whatever happens next
    if wait > 0:
        refused = render(request, session, "login.html",
                         {"next": _safe_next(next), "email": email,
                          "error": f"Too many failed sign-ins. Try again in {int(wait) + 1} seconds."}, status_code=429)
        refused.headers["Retry-After"] = str(int(wait) + 1)
        return refused
    employee = session.exec(select(Employee).where(func.lower(Employee.email) == email.strip().lower())
                            .order_by(Employee.active.desc())).first()
    if not passwords.verify(employee, password) or employee is None or not employee.active:
        audit.act_as(session, f"address {auth.client_address(request)}")
        audit.record(session, "sign_in_failed", f"email {email.strip().lower()[:200]}")
        return render(request, session, "login.html", {"next": _safe_next(next), "email": email, "error": WRONG},
                      status_code=401)
    attempts.succeeded(session, *keys)
    auth.sign_in(request, session, employee)
    audit.act_as(session, auth.employee_actor(employee))
    audit.record(session, "sign_in", f"employee {employee.number}", f"from {auth.client_address(request)}")
    session.commit()  # the session row exists before the browser follows the redirect
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(auth.check_csrf)])
def logout(request: Request, session: Session = Depends(db)) -> RedirectResponse:
    employee = web_sessions.employee_of(session, request.session.get("sid"))
    if employee is not None:
        audit.act_as(session, auth.employee_actor(employee))
        audit.record(session, "sign_out", f"employee {employee.number}")
    auth.sign_out(request, session)
    session.commit()
    return RedirectResponse("/login", status_code=303)
