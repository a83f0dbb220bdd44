"""An OAuth account's sign-in state in words, for the admin pages: what it is and which button fixes it.

Read-only: the state itself is kept by bridge.accounts.oauth.tokens (a refused refresh marks "sign in again")
and bridge.accounts.oauth.flows (a sign-in marks "ok").
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlmodel import Session, select

from models import ImapServer, OAuthClient, OAuthGrant, SmtpAccount

BUTTONS = {"microsoft": "Sign in with Microsoft", "google": "Sign in with Google"}


def button_label(provider: str) -> str:
    """The sign-in button's name, as the Test connection hint and `oauth login` name it."""
    return BUTTONS.get(provider, "Sign in")


@dataclass(frozen=True)
class SignInState:
    """What a page shows of one OAuth account: `state` is ok | sign_in_again | not_signed_in | app."""

    kind: str
    account_id: int
    account_name: str
    client_name: str
    provider: str
    flow: str
    state: str
    text: str
    button: str | None  # None: app-only access, nobody signs in
    origin: str | None  # the provider's sign-in origin, which the button's form is sent on to


def _origin(url: str) -> str | None:
    """scheme://host[:port] of the authorize URL, or None if it is not plainly one (it goes into a CSP header)."""
    parts = urlsplit(url)
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-:[]")
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    if not set(parts.netloc.lower()) <= allowed:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def sign_in_state(session: Session, kind: str, account: SmtpAccount | ImapServer) -> SignInState | None:
    """The account's sign-in state, or None when it signs in with a password.

    The grant is read afresh (populate_existing): a Test connection in the same request may just have
    marked it "sign in again" in a session of its own."""
    if account.oauth_client_id is None:
        return None
    client = session.get(OAuthClient, account.oauth_client_id)
    flow = account.oauth_flow or "delegated"
    grant = session.exec(select(OAuthGrant).where(OAuthGrant.account_kind == kind,
                                                  OAuthGrant.account_id == account.id)
                         .execution_options(populate_existing=True)).first()
    button: str | None = button_label(client.provider)
    if flow == "app":
        state, text, button = "app", "App-only access (no sign-in)", None
    elif grant is not None and grant.state == "ok":
        state, text = "ok", f"Signed in as {grant.username or account.username}"
    elif grant is not None and (grant.state_reason or grant.refresh_token):
        state, text = "sign_in_again", f"Sign in again: {grant.state_reason or 'the sign-in ended'}"
    else:
        state, text = "not_signed_in", "Not signed in yet"
    return SignInState(kind, account.id, account.name, client.name, client.provider, flow, state, text, button,
                       _origin(client.authorize_url))
