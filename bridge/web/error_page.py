"""The page for 403/404 and refused forms. A leaf: the application's error handlers and the pages that
refuse a request both render it, without importing each other."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from bridge.web import auth
from bridge.web.templating import open_unassigned, templates
from models.db import session_scope


def beyond_any_id(exc: BaseException) -> bool:
    """An id no table can hold (2^63 and more): SQLite cannot convert it, PostgreSQL says out of range."""
    return isinstance(exc, OverflowError) or "out of range" in str(getattr(exc, "orig", "") or "")


def error_page(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    """The page for 403/404 and refused forms, in a session of its own (the request's was rolled back)."""
    me = getattr(request.state, "employee", None)
    count = None
    if me is not None:
        try:
            with session_scope(request.app.state.engine) as session:
                count = open_unassigned(session)
        except Exception:  # noqa: BLE001 - the error page must render even when the database does not answer
            count = "?"
    return templates.TemplateResponse(request, "error.html", {"title": title, "detail": detail, "me": me,
                                                              "unassigned_count": count,
                                                              "csrf_token": auth.csrf_token(request)},
                                      status_code=status)
