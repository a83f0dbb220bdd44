"""Jinja2 templates (autoescaped: candidate text is shown as text) and the values every page needs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func
from sqlmodel import Session, select

from bridge.web import auth
from models import InboundMessage

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


templates.env.filters["when"] = _when


def open_unassigned(session: Session) -> int:
    """The count in the navigation: one indexed count, not a list."""
    query = select(func.count()).select_from(InboundMessage).where(
        InboundMessage.route == "unassigned", InboundMessage.triage == "open")
    return session.exec(query).one()


def flash(request: Request, message: str) -> None:
    """A one-time message for the next page (after a Post/Redirect/Get), kept in the session."""
    request.session["flash"] = message


def render(request: Request, session: Session, name: str, context: dict[str, object] | None = None,
           status_code: int = 200) -> HTMLResponse:
    """A page with the signed-in employee, the navigation count and the CSRF token filled in."""

    values = {"me": getattr(request.state, "employee", None), "csrf_token": auth.csrf_token(request),
              "flash": request.session.pop("flash", None),
              "unassigned_count": open_unassigned(session) if getattr(request.state, "employee", None) else 0}
    values.update(context or {})
    return templates.TemplateResponse(request, name, values, status_code=status_code)
