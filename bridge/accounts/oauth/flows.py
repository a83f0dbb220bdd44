"""Delegated sign-in: the device code flow (RFC 8628) for the CLI, the authorization code flow with
PKCE and `state` for the web button. Both end by storing the grant's tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge import crypto
from bridge.accounts.oauth import providers, tokens
from bridge.accounts.oauth.clients import configured_scopes
from bridge.errors import SIGN_IN_NEEDED, BridgeError, InputError
from bridge.ops.error_reports import records
from models import ImapServer, OAuthClient, OutboundMessage, SmtpAccount, utcnow
from models.db import session_scope

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class SignInFailed(BridgeError):
    """The person declined, the code expired, or the provider refused."""


@dataclass(frozen=True)
class Target:
    """The account being signed in and the client it signs in with (plain values, no session)."""

    kind: str
    account_id: int
    name: str
    username: str | None
    flow: str
    provider: str
    client_id: str
    client_secret: str | None
    scope: str
    authorize_url: str
    token_url: str
    device_url: str | None


def target(engine: Engine, kind: str, name: str) -> Target:
    model = SmtpAccount if kind == "smtp" else ImapServer
    with session_scope(engine) as session:

        account = session.exec(select(model).where(model.name == name)).first()
        if account is None:
            raise InputError(f"no {kind} account named {name!r}")
        if account.oauth_client_id is None:
            raise InputError(f"the {kind} account {name!r} signs in with a password, not OAuth (add it with --oauth)")
        client = session.get(OAuthClient, account.oauth_client_id)
        flow = account.oauth_flow or "delegated"
        secret = crypto.decrypt(client.client_secret).reveal() if client.client_secret else None
        return Target(kind, account.id, account.name, account.username, flow, client.provider, client.client_id,
                      secret, " ".join(providers.scopes(client.provider, kind, flow, configured_scopes(client))),
                      client.authorize_url, client.token_url, client.device_url)


def _save(engine: Engine, t: Target, token: dict[str, object]) -> None:
    """Keep the tokens; the messages that waited for this sign-in are queued again in the same step."""
    with session_scope(engine) as session:
        tokens.store(session, tokens.grant_of(session, t.kind, t.account_id), token, t.username)
        if t.kind == "smtp":
            session.exec(update(OutboundMessage).where(
                OutboundMessage.status == "not_sent", OutboundMessage.smtp_account == t.name,
                OutboundMessage.last_reply.startswith(SIGN_IN_NEEDED))
                .values(status="queued", next_attempt_at=utcnow(), hint=None))
    records.signed_in(engine, t.kind, t.name)  # error reports: a "sign in again" condition is over


@dataclass(frozen=True)
class DeviceCode:
    verification_uri: str
    user_code: str
    device_code: str
    interval: float
    expires_in: float


def start_device(t: Target) -> DeviceCode:
    if t.flow == "app":
        raise InputError(f"the {t.kind} account {t.name!r} uses app-only access: it needs no sign-in")
    refused = providers.device_flow_refused(t.provider)
    if refused or not t.device_url:
        raise InputError(refused or "this OAuth client has no --device-url")
    answer = httpx.post(t.device_url, data={"client_id": t.client_id, "scope": t.scope}, timeout=20)
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code != 200 or "device_code" not in body:
        raise SignInFailed(f"the device endpoint refused ({answer.status_code} {body.get('error', '')})".strip())
    return DeviceCode(body.get("verification_uri") or body.get("verification_url"), body["user_code"],
                      body["device_code"], float(body.get("interval", 5)), float(body.get("expires_in", 900)))


def finish_device(engine: Engine, t: Target, code: DeviceCode, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll the token endpoint until the person approves, declines, or the code expires."""
    interval, deadline = code.interval, time.monotonic() + code.expires_in
    with OAuth2Client(t.client_id, t.client_secret, timeout=20, token_endpoint_auth_method=(
            "client_secret_post" if t.client_secret else "none")) as http:
        while time.monotonic() < deadline:
            sleep(interval)
            try:
                token = http.fetch_token(t.token_url, grant_type=DEVICE_GRANT, device_code=code.device_code)
            except OAuthError as err:
                if err.error == "authorization_pending":
                    continue
                if err.error == "slow_down":
                    interval += 5
                    continue
                raise SignInFailed(f"sign-in failed: {err.error}") from None
            _save(engine, t, dict(token))
            return
    raise SignInFailed("the code expired before it was approved; run the command again")


def authorization_url(t: Target, redirect_uri: str) -> tuple[str, str, str]:
    """The provider's sign-in URL, with `state` and a PKCE verifier to keep for the callback."""
    if t.flow == "app":
        raise InputError(f"the {t.kind} account {t.name!r} uses app-only access: it needs no sign-in")
    verifier = generate_token(64)
    with OAuth2Client(t.client_id, t.client_secret, scope=t.scope, redirect_uri=redirect_uri,
                      code_challenge_method="S256") as http:
        url, state = http.create_authorization_url(t.authorize_url, code_verifier=verifier)
    return url, state, verifier


def finish_authorization(engine: Engine, t: Target, redirect_uri: str, code: str, verifier: str) -> None:
    with OAuth2Client(t.client_id, t.client_secret, redirect_uri=redirect_uri, timeout=20,
                      token_endpoint_auth_method="client_secret_post" if t.client_secret else "none") as http:
        try:
            token = http.fetch_token(t.token_url, grant_type="authorization_code", code=code, code_verifier=verifier)
        except OAuthError as err:
            raise SignInFailed(f"sign-in failed: {err.error}") from None
    _save(engine, t, dict(token))
