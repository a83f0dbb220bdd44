"""Removing set-up from the pages: a confirmation page, then bridge.accounts.removal, whose refusal (the
thing is still in use) is shown on that page, naming what uses it; nothing is removed without the click."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from bridge.errors import InputError
from bridge.web.templating import flash, render


def confirm(request: Request, session: Session, *, noun: str, name: str, action: str, back: str, consequence: str,
            error: str | None = None, status_code: int = 200) -> Response:
    return render(request, session, "admin/confirm_remove.html",
                  {"title": f"Remove {noun} {name}", "noun": noun, "name": name, "action": action, "back": back,
                   "consequence": consequence, "error": error}, status_code=status_code)


def remove(request: Request, session: Session, remover: Callable[[], None], *, noun: str, name: str, action: str,
           back: str, listing: str, consequence: str) -> Response:
    """Run `remover`; on success back to the list, else the confirmation page again with the refusal (409)."""
    try:
        remover()
    except InputError as err:
        session.rollback()
        return confirm(request, session, noun=noun, name=name, action=action, back=back, consequence=consequence,
                       error=str(err), status_code=409)
    session.commit()
    flash(request, f"{noun[0].upper()}{noun[1:]} {name!r} removed")
    return RedirectResponse(listing, status_code=303)
