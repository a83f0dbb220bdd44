"""What the admin pages share: an admin-only router, typed values read from a form, errors beside their field.

Validation itself is not here: it is bridge/accounts.py and bridge/portal.py, the code the CLI runs, so a
form and a command refuse the same input with the same words. This module only turns text fields into
the types those functions take, and an error into a message shown next to the field it names.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlmodel import Session

from bridge.errors import FieldError, InputError
from bridge.web import auth

FORM = "form"  # the key of an error that is about the whole form rather than one field


def admin_router() -> APIRouter:
    """Every route of the admin pages needs a signed-in admin (403 for recruiters), GET and POST alike."""
    return APIRouter(prefix="/admin", dependencies=[Depends(auth.require_admin)])


async def form_values(request: Request) -> dict[str, str]:
    """The posted text fields (line endings as typed: browsers send CRLF from a textarea)."""
    form = await request.form()
    return {key: value.replace("\r\n", "\n") for key, value in form.items() if isinstance(value, str)}


def kept(values: dict[str, str]) -> dict[str, str]:
    """The typed values to show again after an error: all but passwords, which are never sent back."""
    return {key: value for key, value in values.items() if "password" not in key and key != "csrf_token"}


def text(values: dict[str, str], name: str) -> str:
    return values.get(name, "").strip()


def optional(values: dict[str, str], name: str) -> str | None:
    return text(values, name) or None


def checked(values: dict[str, str], name: str) -> bool:
    return name in values


def integer(values: dict[str, str], name: str, label: str) -> int:
    raw = text(values, name)
    try:
        return int(raw)
    except ValueError:
        raise FieldError(name, f"{label} {raw!r} is not a whole number") from None


def number(values: dict[str, str], name: str, label: str) -> float:
    raw = text(values, name)
    try:
        return float(raw)
    except ValueError:
        raise FieldError(name, f"{label} {raw!r} is not a number") from None


def errors_of(err: InputError) -> dict[str, str]:
    """{field: message}; an error that names no field is shown above the form."""
    return {err.field if isinstance(err, FieldError) else FORM: str(err)}


def refused(session: Session, err: InputError) -> dict[str, str]:
    """Undo whatever the failed attempt left in the session (nothing is stored), and say why."""
    session.rollback()
    return errors_of(err)


def seconds(value: float) -> str:
    """30.0 -> "30": a timeout as a person would type it."""
    return f"{value:g}"
