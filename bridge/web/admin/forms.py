"""What the admin pages share: an admin-only router, typed values read from a form, errors beside their field.

Validation itself is not here: it is bridge/accounts/ and bridge/portal.py, the code the CLI runs, so a
form and a command refuse the same input with the same words. This module only turns text fields into
the types those functions take, and an error into a message shown next to the field it names.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from sqlalchemy import delete
from sqlmodel import Session, select

from bridge.accounts import servers
from bridge.accounts.servers import ServerFields
from bridge.errors import FieldError, InputError
from bridge.web import auth
from models import ImapServer, OAuthClient, OAuthGrant, SmtpAccount

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


def port(values: dict[str, str]) -> int | None:
    """The port field; empty is allowed when the host field holds it (`smtp.example.com:587`)."""
    return integer(values, "port", "port") if text(values, "port") else None


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


# --- Sign-in: a password, or an OAuth client (SMTP accounts and IMAP servers alike) ------------------------

SIGN_IN = [("password", "Password"), ("oauth", "OAuth client")]
FLOWS = [("delegated", "delegated: a person signs in with the Sign in button"),
         ("app", "app: app-only access, no sign-in (client credentials)")]


def oauth_choices(session: Session) -> dict[str, object]:
    """The Sign-in, OAuth client and OAuth flow selects."""
    names = session.exec(select(OAuthClient.name).order_by(OAuthClient.name)).all()
    options = [(n, n) for n in names] or [("", "None yet: add one on the OAuth clients page")]
    return {"signin_options": SIGN_IN, "oauth_options": options, "flow_options": FLOWS}


def oauth_values(session: Session, account: SmtpAccount | ImapServer) -> dict[str, str]:
    """How the account signs in, as the form shows it."""
    client = session.get(OAuthClient, account.oauth_client_id) if account.oauth_client_id is not None else None
    return {"signin": "oauth" if client else "password", "oauth": client.name if client else "",
            "oauth_flow": account.oauth_flow or "delegated"}


@dataclass(frozen=True)
class SignInChoice:
    """The form's Sign-in choice: `client` None is a password."""

    client: str | None
    flow: str


def sign_in_choice(values: dict[str, str]) -> SignInChoice:
    """Read (and check) the Sign-in fields; with an OAuth client the Password field must stay empty."""
    flow = text(values, "oauth_flow") or "delegated"
    if text(values, "signin") != "oauth":
        return SignInChoice(None, flow)
    client = text(values, "oauth")
    if not client:
        raise FieldError("oauth", "choose the OAuth client this account signs in with (add one on the OAuth clients "
                                  "page)")
    if values.get("password"):
        raise FieldError("password", "an account that signs in with an OAuth client has no password: leave Password "
                                     "empty, or choose Sign-in Password")
    return SignInChoice(client, flow)


def password_first(session: Session, kind: str, account: SmtpAccount | ImapServer, choice: SignInChoice) -> None:
    """Before an edit is saved: an account going back to a password stops using OAuth (so its checks ask for one)."""
    if choice.client is None and account.oauth_client_id is not None:
        account.oauth_client_id, account.oauth_flow = None, None
        _forget_grant(session, kind, account.id)
        session.add(account)


def oauth_after(session: Session, kind: str, account: SmtpAccount | ImapServer, choice: SignInChoice) -> None:
    """After an edit is saved: an account choosing a (different) OAuth client or flow starts from no sign-in."""
    if choice.client is None:
        return
    before = (account.oauth_client_id, account.oauth_flow)
    servers.use_oauth(session, account, choice.client, choice.flow)
    if before != (account.oauth_client_id, account.oauth_flow):
        _forget_grant(session, kind, account.id)


def _forget_grant(session: Session, kind: str, account_id: int) -> None:
    """The tokens belonged to the previous client or flow: they are never used again."""
    session.exec(delete(OAuthGrant).where(OAuthGrant.account_kind == kind, OAuthGrant.account_id == account_id))


def with_notes(message: str, fields: ServerFields, protocol: str) -> str:
    """The saved-message plus what validation mended or suspects (an app password's spaces, host:port, the
    other protocol's host), as the CLI prints them after `smtp add` / `imap add`."""
    notes = fields.notes(protocol)
    return " ".join([message, *(f"Note: {n}" for n in notes)])
