"""Sign in and sign out. A wrong email and a wrong password get the same answer, in the same time."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import Session, select

from bridge.accounts import passwords
from bridge.web import auth
from bridge.web.deps import db
from bridge.web.templating import render
from models import Employee

router = APIRouter()
WRONG = "Wrong email or password"


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
    throttle: auth.SignInThrottle = request.app.state.throttle
    address = request.client.host if request.client else "unknown"
    wait = throttle.wait_for(address)
    if wait > 0:
        return render(request, session, "login.html",
                      {"next": _safe_next(next), "email": email,
                       "error": f"Too many failed sign-ins. Try again in {int(wait) + 1} seconds."}, status_code=429)
    employee = session.exec(select(Employee).where(func.lower(Employee.email) == email.strip().lower())
                            .order_by(Employee.active.desc())).first()
    if not passwords.verify(employee, password) or employee is None or not employee.active:
        throttle.failed(address)
        return render(request, session, "login.html", {"next": _safe_next(next), "email": email, "error": WRONG},
                      status_code=401)
    throttle.succeeded(address)
    auth.sign_in(request, employee)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(auth.check_csrf)])
def logout(request: Request) -> RedirectResponse:
    auth.sign_out(request)
    return RedirectResponse("/login", status_code=303)
