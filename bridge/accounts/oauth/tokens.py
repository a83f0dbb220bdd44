"""Access tokens for XOAUTH2: refreshed before they expire, one refresh at a time per grant.

Providers rotate refresh tokens: the old one stops working once the new one is issued, so two
workers refreshing at once would leave one of them holding a dead token and sign the account out.
A lease (`refreshing_until`, taken by a conditional UPDATE, so it holds across processes on SQLite
and PostgreSQL) lets one refresh while the others wait for its result. A refused grant
(`invalid_grant`) marks the account "sign in again" with the fix, and sending waits for it. A refresh that
fails, refused or not, is counted (bridge.metrics).
"""

from __future__ import annotations

import datetime as dt
import time

from authlib.integrations.base_client.errors import OAuthError
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge import crypto, metrics
from bridge.accounts.oauth import providers
from bridge.accounts.oauth.clients import configured_scopes
from bridge.errors import ConfigError, NeedsSignIn
from bridge.net.connections import Bearer
from bridge.ops.error_reports import records
from models import ImapServer, OAuthClient, OAuthGrant, SmtpAccount, utcnow
from models.db import session_scope

EARLY = dt.timedelta(seconds=60)  # refresh this long before the access token expires
LEASE = dt.timedelta(seconds=30)  # longer than a token request takes; a dead refresher's lease runs out
WAIT_S = 30.0


def fix_command(kind: str, name: str, provider: str, flow: str = "delegated") -> str:
    """What the admin runs (or presses) to sign in again; app-only access has no person to sign in."""
    if flow == "app":
        grant = "the service account's key and its domain-wide delegation" if provider == "google" else (
            "the client secret and the app's SMTP.SendAsApp / IMAP.AccessAsApp permission")
        return f"check {grant}, then register the client again (replybridge oauth add)"
    button = {"microsoft": "Sign in with Microsoft", "google": "Sign in with Google"}.get(provider, "Sign in")
    return f"replybridge oauth login {kind} {name} --device, or the \"{button}\" button on the account's page"


def grant_of(session: Session, kind: str, account_id: int) -> OAuthGrant:
    grant = session.exec(select(OAuthGrant).where(OAuthGrant.account_kind == kind,
                                                  OAuthGrant.account_id == account_id)).first()
    if grant is None:
        grant = OAuthGrant(account_kind=kind, account_id=account_id)
        session.add(grant)
        session.flush()
    return grant


def store(session: Session, grant: OAuthGrant, token: dict[str, object], username: str | None = None) -> None:
    """Keep a token response: access token, its expiry, and the (possibly rotated) refresh token."""
    grant.access_token = crypto.encrypt(str(token["access_token"]))
    expires_in = token.get("expires_in")
    grant.expires_at = utcnow() + dt.timedelta(seconds=int(expires_in)) if expires_in else None
    if token.get("refresh_token"):
        grant.refresh_token = crypto.encrypt(str(token["refresh_token"]))
    if username:
        grant.username = username
    grant.state, grant.state_reason, grant.refreshing_until, grant.updated_at = "ok", None, None, utcnow()
    session.add(grant)


def _account(session: Session, kind: str, account_id: int) -> SmtpAccount | ImapServer:
    model = SmtpAccount if kind == "smtp" else ImapServer
    account = session.get(model, account_id)
    if account is None or account.oauth_client_id is None:
        raise ConfigError(f"{kind} account {account_id} does not sign in with OAuth")
    return account


def _fresh(grant: OAuthGrant) -> bool:
    return bool(grant.access_token) and grant.expires_at is not None and grant.expires_at - EARLY > utcnow()


def _take_lease(engine: Engine, grant_id: int) -> bool:
    now = utcnow()
    with session_scope(engine) as session:
        taken = session.exec(update(OAuthGrant).where(
            OAuthGrant.id == grant_id, or_(OAuthGrant.refreshing_until.is_(None), OAuthGrant.refreshing_until < now))
            .values(refreshing_until=now + LEASE)).rowcount
    return taken == 1


JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _service_account_token(client: OAuthClient, private_key: str, scope: str, mailbox: str) -> dict[str, object]:
    """Google Workspace app-only: the service account signs an assertion acting for the mailbox (domain-wide
    delegation, RFC 7523); there is no refresh token, a new assertion is made each time."""
    # loaded only for a Google service account, the one flow that signs its own assertion
    import httpx
    from joserfc import jwt  # (likewise)
    from joserfc.jwk import RSAKey  # (likewise)

    now = int(time.time())
    claims = {"iss": client.client_id, "sub": mailbox, "scope": scope, "aud": client.token_url, "iat": now,
              "exp": now + 3600}
    assertion = jwt.encode({"alg": "RS256", "typ": "JWT"}, claims, RSAKey.import_key(private_key))
    answer = httpx.post(client.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion}, timeout=20)
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code != 200 or "access_token" not in body:
        raise OAuthError(error=body.get("error", f"http_{answer.status_code}"),
                         description=body.get("error_description"))
    return body


def _request_token(client: OAuthClient, grant: OAuthGrant, kind: str, flow: str, mailbox: str) -> dict[str, object]:
    """One token request: client credentials (or a Google service account) for app-only, else the refresh token."""
    from authlib.integrations.httpx_client import OAuth2Client  # authlib loads only when a token is due

    secret = crypto.decrypt(client.client_secret).reveal() if client.client_secret else None
    scope = " ".join(providers.scopes(client.provider, kind, flow, configured_scopes(client)))
    if flow == "app" and client.provider == "google":
        if not secret:
            raise OAuthError(error="invalid_client", description="Google app-only access needs a service account key")
        return _service_account_token(client, secret, scope, mailbox)
    method = "client_secret_post" if secret else "none"
    with OAuth2Client(client.client_id, secret, scope=scope, timeout=20, token_endpoint_auth_method=method) as http:
        if flow == "app":
            return dict(http.fetch_token(client.token_url, grant_type="client_credentials"))
        if not grant.refresh_token:
            raise OAuthError(error="invalid_grant", description="no refresh token: never signed in")
        return dict(http.refresh_token(client.token_url, refresh_token=crypto.decrypt(grant.refresh_token).reveal()))


def bearer(engine: Engine, kind: str, account_id: int) -> Bearer:
    """A valid access token for the account, refreshing it (once, across workers) when due."""
    deadline = time.monotonic() + WAIT_S
    while True:
        with session_scope(engine) as session:
            account = _account(session, kind, account_id)
            client = session.get(OAuthClient, account.oauth_client_id)
            flow = account.oauth_flow or "delegated"
            grant = grant_of(session, kind, account_id)
            name, username = account.name, account.username or grant.username or ""
            needs_sign_in = grant.state != "ok" and flow != "app"
            why, provider = grant.state_reason or "not signed in yet", client.provider
            usable = not needs_sign_in and _fresh(grant)
            fresh = Bearer(username, crypto.decrypt(grant.access_token)) if usable else None
            grant_id = grant.id
        if needs_sign_in:
            raise _needs_sign_in(engine, kind, name, why, provider)
        if fresh is not None:  # a grant is only ever mended by storing new tokens: no recovery to record here
            return fresh
        if _take_lease(engine, grant_id):
            bearer_ = _refresh(engine, kind, account_id, grant_id)
            records.signed_in(engine, kind, name)  # error reports: new tokens, the grant works
            return bearer_
        if time.monotonic() > deadline:
            raise ConfigError(f"the token of {kind} account {name!r} is being refreshed elsewhere and did not arrive")
        time.sleep(0.2)  # another worker refreshes: its result is read on the next turn


def _needs_sign_in(engine: Engine, kind: str, name: str, why: str, provider: str,
                   flow: str = "delegated") -> NeedsSignIn:
    """The error to raise, reported to the admin at once (bridge.ops.error_reports) with the command that fixes it."""
    state = "was refused a token" if flow == "app" else "must be signed in again"
    err = NeedsSignIn(f"the {kind} account {name!r} {state} ({why}): {fix_command(kind, name, provider, flow)}")
    records.needs_sign_in(engine, kind, name, f"{err}\nHint: sign in again; waiting mail is then sent by itself.")
    return err


def _refresh(engine: Engine, kind: str, account_id: int, grant_id: int) -> Bearer:
    with session_scope(engine) as session:
        account = _account(session, kind, account_id)
        client = session.get(OAuthClient, account.oauth_client_id)
        grant = session.get(OAuthGrant, grant_id)
        flow = account.oauth_flow or "delegated"
        name, mailbox = account.name, account.username or grant.username or ""
    try:
        token = _request_token(client, grant, kind, flow, mailbox)
    except OAuthError as err:
        metrics.token_refresh_failed(kind)
        refused = err.error in ("invalid_grant", "invalid_client", "unauthorized_client")
        with session_scope(engine) as session:
            grant = session.get(OAuthGrant, grant_id)
            grant.refreshing_until = None
            if refused:
                grant.state, grant.state_reason = "needs_sign_in", f"{err.error}: {err.description or ''}".strip()
            session.add(grant)
        if refused:
            raise _needs_sign_in(engine, kind, name, err.error, client.provider, flow) from None
        raise ConfigError(f"the token endpoint refused a new token for {kind} account {name!r}: {err.error}") from None
    except Exception:
        metrics.token_refresh_failed(kind)
        with session_scope(engine) as session:
            session.exec(update(OAuthGrant).where(OAuthGrant.id == grant_id).values(refreshing_until=None))
        raise
    with session_scope(engine) as session:
        grant = session.get(OAuthGrant, grant_id)
        store(session, grant, token)
        return Bearer(account.username or grant.username or "", crypto.decrypt(grant.access_token))


def bearer_for(engine: Engine, account: SmtpAccount | ImapServer) -> Bearer | None:
    """The access token to connect with (None for a password account); raises NeedsSignIn when only a
    person can help. Callers fetch it right before opening the connection."""
    if account.oauth_client_id is None:
        return None
    return bearer(engine, "imap" if isinstance(account, ImapServer) else "smtp", account.id)
