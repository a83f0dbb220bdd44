"""A local OAuth 2 authorization server for the tests: a real HTTP server on loopback, in a thread.

The bridge signs in to Microsoft 365 and Google mailboxes with OAuth 2; its tests need a provider that
behaves like theirs without the internet: authorization code with PKCE (RFC 6749, RFC 7636), the device
flow (RFC 8628), client credentials, short-lived access tokens, rotating refresh tokens, revocation
(RFC 7009) and introspection (RFC 7662), which lets a real Dovecot check XOAUTH2 logins against it.

Tokens are opaque random strings held in memory; the helpers (`approve_device`, `revoke`,
`expire_access_tokens`, `token_requests` ...) let a test drive the provider and see what it was asked.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest

from tests.servers.dovecot import DOVECOT_BINARY, Dovecot, start_dovecot

HOST = "127.0.0.1"
CLIENT_ID = "replybridge-test-client"
CLIENT_SECRET = "test-client-secret-9f3c"  # a test value, never a real credential
USER = "ana@example.test"  # the mailbox user of tests.servers.dovecot
SCOPE = "offline_access https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send"
APP_SCOPE = "https://outlook.office365.com/.default"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523: Google's service accounts
GRANT_TYPES = ("authorization_code", "refresh_token", DEVICE_GRANT, "client_credentials", JWT_GRANT)
CODE_LIFETIME = 60.0
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels (no words), no digits (no 0/O confusion)


class _OAuthError(Exception):
    """An RFC 6749 error response: JSON {"error", "error_description"} with an HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass
class Token:
    """One issued token. `grant` ties the access and refresh tokens of one sign-in together."""

    value: str
    kind: str  # "access" or "refresh"
    user: str
    client_id: str
    scope: str
    grant: str
    issued_at: float
    expires_at: float | None  # None: a refresh token, valid until rotated or revoked
    active: bool = True

    def usable(self, now: float) -> bool:
        return self.active and (self.expires_at is None or now < self.expires_at)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    user: str
    expires_at: float
    used: bool = False


@dataclass
class _Device:
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    interval: float
    status: str = "pending"  # pending | approved | denied | consumed
    user: str = ""
    last_poll: float | None = None


@dataclass
class _Pending:
    """An authorization request waiting for the Approve/Deny button (when auto_approve is off)."""

    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    state: str | None


@dataclass
class OAuthServer:
    """The running stand-in: its URLs, its client registration, its settings and what it issued.

    Settings may be changed while it runs (they are read per request):
    access_token_lifetime: seconds an access token lives (expires_in is this, rounded up).
    auto_approve: /authorize redirects straight back with a code for `user`; when False it shows a page
        with Approve and Deny buttons, for browser tests.
    device_interval / device_expires_in / slow_down_step: the device flow's timing (RFC 8628 section 3.5).
    token_delay: seconds every /token request waits before answering (widens race windows).
    require_client_secret: when True the client is confidential and every grant must authenticate it.
    app_user: the mailbox a client_credentials (app-only) token may open; introspection reports it as
        the token's username, as a mailbox permission granted to the app would.
    """

    base_url: str
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    user: str = USER
    scope: str = SCOPE
    app_scope: str = APP_SCOPE
    app_user: str = USER
    access_token_lifetime: float = 3600.0
    auto_approve: bool = True
    device_interval: float = 1.0
    device_expires_in: float = 600.0
    slow_down_step: float = 5.0
    token_delay: float = 0.0
    require_client_secret: bool = False
    # service accounts (Google Workspace domain-wide delegation): client email -> public key (PEM)
    service_accounts: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict, repr=False)
    _codes: dict[str, _Code] = field(default_factory=dict, repr=False)
    _devices: dict[str, _Device] = field(default_factory=dict, repr=False)
    _pending: dict[str, _Pending] = field(default_factory=dict, repr=False)
    _requests: Counter[str] = field(default_factory=Counter, repr=False)
    _introspections: int = field(default=0, repr=False)
    _failures: list[tuple[int, str]] = field(default_factory=list, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _httpd: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # --- URLs ---------------------------------------------------------------------------------------------

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def device_url(self) -> str:
        return f"{self.base_url}/device"

    @property
    def verification_uri(self) -> str:
        return f"{self.base_url}/device/verify"

    @property
    def introspect_url(self) -> str:
        return f"{self.base_url}/introspect"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}/revoke"

    # --- what tests look at -------------------------------------------------------------------------------

    def token_requests(self, grant_type: str | None = None) -> int:
        """POSTs to /token so far, of one grant type (or all), successful or not."""
        with self._lock:
            return self._requests[grant_type] if grant_type else sum(self._requests.values())

    @property
    def introspections(self) -> int:
        """Introspection requests answered so far (Dovecot makes one per XOAUTH2/OAUTHBEARER login)."""
        with self._lock:
            return self._introspections

    def access_tokens(self, user: str | None = None, *, usable: bool = False) -> list[str]:
        """Access tokens issued (to `user` if given) in issue order; only unexpired, unrevoked if `usable`."""
        return self._tokens("access", user, usable)

    def refresh_tokens(self, user: str | None = None, *, usable: bool = False) -> list[str]:
        """Refresh tokens issued (to `user` if given) in issue order; only the current ones if `usable`."""
        return self._tokens("refresh", user, usable)

    def introspect(self, token: str) -> dict[str, Any]:
        """The RFC 7662 answer for `token`: only a live access token is active."""
        now = time.time()
        with self._lock:
            found = self.tokens.get(token)
            if found is None or found.kind != "access" or not found.usable(now):
                return {"active": False}
            assert found.expires_at is not None
            return {
                "active": True,
                "scope": found.scope,
                "client_id": found.client_id,
                "username": found.user,
                "sub": found.user,
                "token_type": "Bearer",
                "iat": int(found.issued_at),
                "exp": int(found.expires_at),
            }

    def token_check(self, user: str, token: str) -> bool:
        """True when `token` is a live access token for `user` (the SMTP peer's XOAUTH2 check)."""
        answer = self.introspect(token)
        return bool(answer["active"]) and answer["username"] == user

    # --- what tests do ------------------------------------------------------------------------------------

    def approve_device(self, user_code: str, user: str | None = None) -> None:
        """The user enters `user_code` and approves: the next poll gets tokens."""
        self._decide_device(user_code, "approved", user or self.user)

    def deny_device(self, user_code: str) -> None:
        """The user declines: the next poll gets access_denied."""
        self._decide_device(user_code, "denied", "")

    def issue(self, user: str | None = None, scope: str | None = None) -> dict[str, Any]:
        """A fresh access and refresh token pair for `user`, as if a sign-in just finished (no HTTP)."""
        with self._lock:
            return self._token_response(user or self.user, self.client_id, scope or self.scope, refresh=True)

    def revoke(self, user: str | None = None) -> int:
        """Revoke everything issued to `user` (default: the configured user), as an admin would.

        Refresh tokens then get invalid_grant and access tokens introspect inactive. Returns the count.
        """
        target = user or self.user
        with self._lock:
            hit = [t for t in self.tokens.values() if t.user == target and t.active]
            for token in hit:
                token.active = False
            return len(hit)

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired now, without waiting for its lifetime."""
        now = time.time()
        with self._lock:
            for token in self.tokens.values():
                if token.kind == "access" and token.expires_at is not None:
                    token.expires_at = min(token.expires_at, now - 1)

    def fail_next_token_requests(self, count: int = 1, status: int = 503,
                                 error: str = "temporarily_unavailable") -> None:
        """The next `count` /token requests (any grant) get this error and change nothing."""
        with self._lock:
            self._failures.extend([(status, error)] * count)

    def stop(self) -> None:
        """Stop serving and close the listening socket; safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- internals ----------------------------------------------------------------------------------------

    def _tokens(self, kind: str, user: str | None, usable: bool) -> list[str]:
        now = time.time()
        with self._lock:
            return [t.value for t in self.tokens.values()
                    if t.kind == kind and (user is None or t.user == user) and (not usable or t.usable(now))]

    def _decide_device(self, user_code: str, status: str, user: str) -> None:
        wanted = _normalise_user_code(user_code)
        with self._lock:
            for device in self._devices.values():
                if device.user_code == wanted and device.status == "pending":
                    device.status = status
                    device.user = user
                    return
        raise KeyError(f"no pending device authorization with user code {user_code!r}")

    def _new_token(self, kind: str, user: str, client_id: str, scope: str, grant: str) -> Token:
        now = time.time()
        token = Token(
            value=("at-" if kind == "access" else "rt-") + secrets.token_urlsafe(24),
            kind=kind, user=user, client_id=client_id, scope=scope, grant=grant, issued_at=now,
            expires_at=now + self.access_token_lifetime if kind == "access" else None,
        )
        self.tokens[token.value] = token
        return token

    def _token_response(self, user: str, client_id: str, scope: str, *, refresh: bool,
                        grant: str | None = None) -> dict[str, Any]:
        """Issue tokens (caller holds the lock) and build the RFC 6749 section 5.1 answer."""
        grant = grant or secrets.token_hex(8)
        access = self._new_token("access", user, client_id, scope, grant)
        answer: dict[str, Any] = {
            "access_token": access.value,
            "token_type": "Bearer",
            "expires_in": max(1, math.ceil(self.access_token_lifetime)),
            "scope": scope,
        }
        if refresh:
            answer["refresh_token"] = self._new_token("refresh", user, client_id, scope, grant).value
        return answer

    # --- endpoints (called from request threads) ----------------------------------------------------------

    def _authenticate_client(self, form: dict[str, str], authorization: str | None, *,
                             need_secret: bool) -> str:
        """client_secret_basic or client_secret_post; returns the client id or raises invalid_client."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
                basic_id, basic_secret = decoded.split(":", 1)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _OAuthError("invalid_client", "malformed Basic credentials", 401) from exc
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        if client_id != self.client_id:
            raise _OAuthError("invalid_client", "unknown client", 401)
        if secret is None and (need_secret or self.require_client_secret):
            raise _OAuthError("invalid_client", "client authentication required", 401)
        if secret is not None and not secrets.compare_digest(secret, self.client_secret):
            raise _OAuthError("invalid_client", "client secret is wrong", 401)
        return client_id

    def _token(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        with self._lock:
            self._requests[grant_type] += 1
            failure = self._failures.pop(0) if self._failures else None
        if self.token_delay:
            time.sleep(self.token_delay)
        if failure is not None:
            raise _OAuthError(failure[1], "injected failure", failure[0])
        if grant_type not in GRANT_TYPES:
            raise _OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        if grant_type == JWT_GRANT:
            return self._grant_jwt(_required(form, "assertion"))
        client_id = self._authenticate_client(form, authorization, need_secret=grant_type == "client_credentials")
        with self._lock:
            if grant_type == "authorization_code":
                return self._grant_code(form, client_id)
            if grant_type == "refresh_token":
                return self._grant_refresh(form, client_id)
            if grant_type == DEVICE_GRANT:
                return self._grant_device(form, client_id)
            return self._token_response(self.app_user, client_id, form.get("scope") or self.app_scope,
                                        refresh=False)

    def _grant_jwt(self, assertion: str) -> dict[str, Any]:
        """A service account's signed assertion acting for the mailbox in `sub` (domain-wide delegation)."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import RSAKey

        unverified = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))
        key = self.service_accounts.get(unverified.get("iss", ""))
        if key is None:
            raise _OAuthError("invalid_client", "unknown service account", 401)
        try:
            claims = jwt.decode(assertion, RSAKey.import_key(key), algorithms=["RS256"]).claims
            jwt.JWTClaimsRegistry(exp={"essential": True}).validate(claims)
        except (JoseError, ValueError) as err:
            raise _OAuthError("invalid_grant", f"bad assertion: {err}") from None
        if claims.get("aud") != self.token_url or not claims.get("sub") or not claims.get("scope"):
            raise _OAuthError("invalid_grant", "assertion needs aud = the token URL, sub and scope")
        with self._lock:
            return self._token_response(claims["sub"], claims["iss"], claims["scope"], refresh=False)

    def _grant_code(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        code = self._codes.get(_required(form, "code"))
        verifier = _required(form, "code_verifier")
        if code is None or code.used or time.time() >= code.expires_at or code.client_id != client_id:
            raise _OAuthError("invalid_grant", "authorization code is invalid, expired or already used")
        code.used = True  # one attempt only, even a failed one (RFC 6749 section 4.1.2)
        if form.get("redirect_uri") != code.redirect_uri:
            raise _OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        if not secrets.compare_digest(_s256(verifier), code.challenge):
            raise _OAuthError("invalid_grant", "PKCE verification failed")
        return self._token_response(code.user, client_id, code.scope, refresh=True)

    def _grant_refresh(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        old = self.tokens.get(_required(form, "refresh_token"))
        if old is None or old.kind != "refresh" or not old.active or old.client_id != client_id:
            raise _OAuthError("invalid_grant", "refresh token is invalid, revoked or already used")
        old.active = False  # rotation: each refresh token works once
        return self._token_response(old.user, client_id, form.get("scope") or old.scope, refresh=True,
                                    grant=old.grant)

    def _grant_device(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        device = self._devices.get(_required(form, "device_code"))
        now = time.monotonic()
        if device is None or device.client_id != client_id or device.status == "consumed":
            raise _OAuthError("invalid_grant", "device code is invalid or already used")
        if now >= device.expires_at:
            raise _OAuthError("expired_token", "the device code has expired")
        if device.status == "denied":
            raise _OAuthError("access_denied", "the user declined")
        too_soon = device.last_poll is not None and now - device.last_poll < device.interval - 0.05
        device.last_poll = now
        if too_soon:
            device.interval += self.slow_down_step
            raise _OAuthError("slow_down", f"poll at most every {device.interval:g} s")
        if device.status == "pending":
            raise _OAuthError("authorization_pending", "the user has not approved yet")
        device.status = "consumed"
        return self._token_response(device.user, client_id, device.scope, refresh=True)

    def _device(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        client_id = self._authenticate_client(form, authorization, need_secret=False)
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
        user_code = f"{user_code[:4]}-{user_code[4:]}"
        device_code = secrets.token_urlsafe(32)
        with self._lock:
            self._devices[device_code] = _Device(
                user_code=user_code, client_id=client_id, scope=form.get("scope") or self.scope,
                expires_at=time.monotonic() + self.device_expires_in, interval=self.device_interval,
            )
        return {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": self.verification_uri,
            "verification_uri_complete": f"{self.verification_uri}?{urlencode({'user_code': user_code})}",
            "expires_in": int(self.device_expires_in),
            "interval": max(1, int(self.device_interval)),
        }

    def _revoke(self, form: dict[str, str], authorization: str | None) -> None:
        """RFC 7009: revoking a refresh token also ends its access tokens; unknown tokens are fine."""
        client_id = self._authenticate_client(form, authorization, need_secret=False)
        with self._lock:
            token = self.tokens.get(_required(form, "token"))
            if token is None or token.client_id != client_id:
                return
            if token.kind == "refresh":
                for other in self.tokens.values():
                    if other.grant == token.grant:
                        other.active = False
            token.active = False

    def _authorize_checks(self, query: dict[str, str]) -> tuple[_Pending, str | None]:
        """Validate an authorization request: (request, error code to redirect with, or None).

        A bad client or redirect_uri raises instead: RFC 6749 forbids redirecting to an unverified URI.
        """
        if query.get("client_id") != self.client_id:
            raise _OAuthError("invalid_client", "unknown client_id")
        redirect_uri = query.get("redirect_uri", "")
        if urlsplit(redirect_uri).scheme not in ("http", "https"):
            raise _OAuthError("invalid_request", "redirect_uri must be an absolute http(s) URL")
        pending = _Pending(client_id=self.client_id, redirect_uri=redirect_uri,
                           challenge=query.get("code_challenge", ""), scope=query.get("scope") or self.scope,
                           state=query.get("state"))
        if query.get("response_type") != "code":
            return pending, "unsupported_response_type"
        if not pending.challenge or query.get("code_challenge_method") != "S256":
            return pending, "invalid_request"  # PKCE with S256 is mandatory here
        return pending, None

    def _approve_url(self, pending: _Pending, user: str) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(client_id=pending.client_id, redirect_uri=pending.redirect_uri,
                                      challenge=pending.challenge, scope=pending.scope, user=user,
                                      expires_at=time.time() + CODE_LIFETIME)
        return _redirect_with(pending, code=code)


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise _OAuthError("invalid_request", f"missing {name}")
    return value


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _normalise_user_code(code: str) -> str:
    letters = "".join(c for c in code.upper() if c.isalnum())
    return f"{letters[:4]}-{letters[4:]}"


def _redirect_with(pending: _Pending, **params: str) -> str:
    if pending.state is not None:
        params["state"] = pending.state
    separator = "&" if urlsplit(pending.redirect_uri).query else "?"
    return pending.redirect_uri + separator + urlencode(params)


def _page(title: str, body: str) -> bytes:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>").encode()


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the OAuthServer; form bodies in, JSON (API) or tiny HTML pages (browser) out."""

    server: _HTTPServer
    error_content_type = "text/plain"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # the tests assert on counters, not on an access log

    @property
    def oauth(self) -> OAuthServer:
        return self.server.oauth

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        query = _single(parse_qs(url.query))
        try:
            if url.path == "/authorize":
                self._authorize_page(query)
            elif url.path == "/device/verify":
                self._device_page(query.get("user_code", ""), "")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        except _OAuthError as err:
            self._send(err.status, _page("Authorization error", f"<p>{html.escape(str(err))}</p>"), "text/html")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        path = urlsplit(self.path).path
        form = self._form()
        authorization = self.headers.get("Authorization")
        try:
            if path == "/token":
                self._json(HTTPStatus.OK, self.oauth._token(form, authorization))
            elif path == "/device":
                self._json(HTTPStatus.OK, self.oauth._device(form, authorization))
            elif path == "/introspect":
                self._introspect(form, authorization)
            elif path == "/revoke":
                self.oauth._revoke(form, authorization)
                self._send(HTTPStatus.OK, b"", "text/plain")
            elif path == "/authorize":
                self._authorize_decision(form)
            elif path == "/device/verify":
                self._device_decision(form)
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
        except _OAuthError as err:
            headers = {"WWW-Authenticate": 'Basic realm="oauth"'} if err.status == 401 else {}
            self._json(err.status, {"error": err.error, "error_description": err.description}, headers)

    # --- browser pages ------------------------------------------------------------------------------------

    def _authorize_page(self, query: dict[str, str]) -> None:
        pending, error = self.oauth._authorize_checks(query)
        if error is not None:
            self._redirect(_redirect_with(pending, error=error))
        elif self.oauth.auto_approve:
            self._redirect(self.oauth._approve_url(pending, self.oauth.user))
        else:
            request_id = secrets.token_urlsafe(16)
            with self.oauth._lock:
                self.oauth._pending[request_id] = pending
            body = (
                f"<p>{html.escape(pending.client_id)} asks for: {html.escape(pending.scope)}</p>"
                '<form method="post" action="/authorize">'
                f'<input type="hidden" name="request_id" value="{request_id}">'
                '<label for="username">Account</label> '
                f'<input id="username" name="username" value="{html.escape(self.oauth.user)}"> '
                '<button name="decision" value="approve">Approve</button> '
                '<button name="decision" value="deny">Deny</button></form>'
            )
            self._send(HTTPStatus.OK, _page("Sign in to the test provider", body), "text/html")

    def _authorize_decision(self, form: dict[str, str]) -> None:
        with self.oauth._lock:
            pending = self.oauth._pending.pop(form.get("request_id", ""), None)
        if pending is None:
            raise _OAuthError("invalid_request", "unknown or already decided authorization request")
        if form.get("decision") == "approve":
            self._redirect(self.oauth._approve_url(pending, form.get("username") or self.oauth.user))
        else:
            self._redirect(_redirect_with(pending, error="access_denied"))

    def _device_page(self, user_code: str, message: str) -> None:
        body = (
            (f"<p>{html.escape(message)}</p>" if message else "")
            + '<form method="post" action="/device/verify">'
            '<label for="user_code">Code</label> '
            f'<input id="user_code" name="user_code" value="{html.escape(user_code)}"> '
            '<button name="decision" value="approve">Approve</button> '
            '<button name="decision" value="deny">Deny</button></form>'
        )
        self._send(HTTPStatus.OK, _page("Enter the code shown by the application", body), "text/html")

    def _device_decision(self, form: dict[str, str]) -> None:
        user_code = form.get("user_code", "")
        try:
            if form.get("decision") == "approve":
                self.oauth.approve_device(user_code)
                message = "Approved. You can close this window."
            else:
                self.oauth.deny_device(user_code)
                message = "Denied."
        except KeyError:
            message = "That code is not valid."
        self._device_page("", message)

    # --- API helpers --------------------------------------------------------------------------------------

    def _introspect(self, form: dict[str, str], authorization: str | None) -> None:
        if authorization and authorization.lower().startswith("basic "):
            self.oauth._authenticate_client({}, authorization, need_secret=True)
        answer = self.oauth.introspect(_required(form, "token"))
        with self.oauth._lock:
            self.oauth._introspections += 1
        self._json(HTTPStatus.OK, answer)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        return _single(parse_qs(raw, keep_blank_values=True))

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        extra = {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})}
        self._send(status, json.dumps(payload).encode(), "application/json", extra)

    def _redirect(self, location: str) -> None:
        self._send(HTTPStatus.FOUND, b"", "text/plain", {"Location": location})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)


def _single(values: dict[str, list[str]]) -> dict[str, str]:
    return {name: items[0] for name, items in values.items()}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    oauth: OAuthServer


def start_oauth_server(**settings: Any) -> OAuthServer:
    """Serve on a free loopback port (bound before anything is published, so no race); caller stops it."""
    httpd = _HTTPServer((HOST, 0), _Handler)
    server = OAuthServer(base_url=f"http://{HOST}:{httpd.server_address[1]}", **settings)
    httpd.oauth = server
    server._httpd = httpd
    server._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                      name="oauth-stand-in", daemon=True)
    server._thread.start()
    return server


@pytest.fixture
def oauth_server() -> Iterator[OAuthServer]:
    """A fresh provider per test (user ana@example.test, auto-approving), stopped afterwards."""
    server = start_oauth_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oauth_dovecot(oauth_server: OAuthServer, tmp_path: Path) -> Iterator[Dovecot]:
    """A Dovecot that takes XOAUTH2 and OAUTHBEARER, checked against `oauth_server`, besides passwords."""
    if not DOVECOT_BINARY.exists():
        pytest.skip(f"Dovecot is not installed ({DOVECOT_BINARY} missing)")
    server = start_dovecot(tmp_path / "dovecot-oauth", oauth_introspection_url=oauth_server.introspect_url)
    try:
        yield server
    finally:
        server.stop()
