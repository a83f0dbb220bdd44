"""Opening SMTP and IMAP connections with the account's security mode, timeout and login.

One factory for the sender, the Sent-folder appender and Test Connection, so they behave alike.
Each step raises a `StageError` naming the step that failed (connect, tls, auth, login), which
`bridge.net.diagnosis` turns into a hint.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from dataclasses import dataclass, replace

from imapclient import IMAPClient

from bridge import crypto
from bridge.errors import ConfigError
from bridge.net.diagnosis import Endpoint, Failure
from bridge.net.sasl import oauthbearer, xoauth2
from models import ImapServer, SmtpAccount

SECURITY_MODES = ("ssl", "starttls", "none")


class StageError(Exception):
    """An error at a named stage; `__cause__` is the original exception."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {type(cause).__name__}")
        self.stage = stage
        self.cause = cause


@dataclass(frozen=True)
class Bearer:
    """An OAuth access token for XOAUTH2/OAUTHBEARER, fetched by the caller (bridge.accounts.oauth.tokens)
    before connecting, so an account that must be signed in again is told apart from a server that refuses."""

    username: str
    access_token: crypto.Secret


@dataclass(frozen=True)
class Login:
    username: str | None
    secret: crypto.Secret | None


def endpoint_of(account: SmtpAccount | ImapServer) -> Endpoint:
    protocol = "imap" if isinstance(account, ImapServer) else "smtp"
    return Endpoint(account.host, account.port, account.security, account.timeout, account.username, protocol,
                    name=account.name)


# Failures where the provider may be refusing this machine's address rather than the account.
_UNANSWERED = frozenset({"timeout", "refused", "disconnected"})


def outgoing_address(host: str, port: int) -> str | None:
    """This machine's source address toward host:port, without sending anything: a UDP socket's connect()
    only picks the route. None when the host does not resolve or no route exists."""
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(sockaddr)
            return str(sock.getsockname()[0])
    except (OSError, UnicodeError):
        return None


def with_local_address(ep: Endpoint, failure: Failure) -> Endpoint:
    """The endpoint with this server's outgoing address filled in when nothing answered, so the hint can
    name it for the provider's allow list (diagnosis itself stays pure)."""
    if failure.kind in _UNANSWERED:
        return replace(ep, local_address=outgoing_address(ep.host, ep.port))
    return ep


def login_of(account: SmtpAccount | ImapServer) -> Login:
    return Login(account.username, crypto.decrypt(account.secret) if account.secret else None)


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def _bearer_answer(mechanism: str, username: str, token: crypto.Secret, host: str, port: int):  # noqa: ANN202
    """smtplib's auth object: the initial response; to an error challenge (334 + JSON) the client answers
    empty (XOAUTH2) or ^A (OAUTHBEARER), and the server then says 535."""
    if mechanism == "OAUTHBEARER":
        return lambda challenge=None: oauthbearer(username, token.reveal(), host, port) if challenge is None else "\x01"
    return lambda challenge=None: xoauth2(username, token.reveal()) if challenge is None else ""


def bearer_mechanism(offered: set[str]) -> str:
    """XOAUTH2 where offered (Microsoft 365 and Google both take it), else OAUTHBEARER (RFC 7628), which
    some servers offer alone."""
    return "OAUTHBEARER" if "OAUTHBEARER" in offered and "XOAUTH2" not in offered else "XOAUTH2"


def _needs_bearer(account: SmtpAccount | ImapServer, bearer: Bearer | None) -> Bearer | None:
    if account.oauth_client_id is not None and bearer is None:
        raise ConfigError(f"{account.name!r} signs in with OAuth: its access token must be fetched first")
    return bearer


def open_smtp(account: SmtpAccount, local_hostname: str | None = None, bearer: Bearer | None = None) -> smtplib.SMTP:
    """A connected, secured and authenticated SMTP session (password AUTH, or XOAUTH2 with the bearer token)."""
    credentials = login_of(account)
    oauth = _needs_bearer(account, bearer)
    ctx = tls_context(account.ca_file)
    stage = "connect"
    conn: smtplib.SMTP | None = None
    try:
        if account.security == "ssl":
            conn = smtplib.SMTP_SSL(account.host, account.port, local_hostname=local_hostname,
                                    timeout=account.timeout, context=ctx)
        else:
            conn = smtplib.SMTP(account.host, account.port, local_hostname=local_hostname,
                                timeout=account.timeout)
        conn.ehlo()
        if account.security == "starttls":
            stage = "tls"
            conn.starttls(context=ctx)
            conn.ehlo()
        if oauth is not None:
            stage = "auth"
            mechanism = bearer_mechanism(set(conn.esmtp_features.get("auth", "").upper().split()))
            conn.auth(mechanism, _bearer_answer(mechanism, oauth.username, oauth.access_token, account.host,
                                                account.port), initial_response_ok=True)
        elif credentials.username:
            stage = "auth"
            if not conn.has_extn("auth"):
                raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
            password = credentials.secret.reveal() if credentials.secret else ""
            conn.login(credentials.username, password)
        return conn
    except BaseException as exc:
        if conn is not None:
            if stage in ("connect", "tls"):  # no conversation to end politely: QUIT would wait out another timeout
                with contextlib.suppress(Exception):
                    conn.close()
            else:
                close_quietly(conn)
        raise StageError(stage, exc) from None


def close_quietly(conn: smtplib.SMTP) -> None:
    """Say QUIT if the server still listens; the connection is thrown away either way."""
    try:
        conn.quit()
    except Exception:  # noqa: BLE001
        with contextlib.suppress(Exception):
            conn.close()


def open_imap(server: ImapServer, bearer: Bearer | None = None) -> IMAPClient:
    """A connected, secured and logged-in IMAP client (LOGIN, or XOAUTH2 with the bearer token)."""
    credentials = login_of(server)
    oauth = _needs_bearer(server, bearer)
    ctx = tls_context(server.ca_file)
    stage = "connect"
    client: IMAPClient | None = None
    try:
        client = IMAPClient(server.host, server.port, ssl=server.security == "ssl", ssl_context=ctx,
                            timeout=server.timeout)
        if server.security == "starttls":
            stage = "tls"
            client.starttls(ctx)
        stage = "login"
        if oauth is not None:
            offered = {c.decode().upper().removeprefix("AUTH=") for c in client.capabilities()
                       if c.startswith(b"AUTH=")}
            if bearer_mechanism(offered) == "OAUTHBEARER":
                client.oauthbearer_login(oauth.username or server.username, oauth.access_token.reveal())
            else:
                client.oauth2_login(oauth.username or server.username, oauth.access_token.reveal())
        else:
            client.login(server.username, credentials.secret.reveal() if credentials.secret else "")
        return client
    except BaseException as exc:
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()
        raise StageError(stage, exc) from None


def logout_quietly(client: IMAPClient | None) -> None:
    """LOGOUT if the server still listens, else drop the socket; the client is thrown away either way."""
    if client is None:
        return
    try:
        client.logout()
    except Exception:  # noqa: BLE001
        with contextlib.suppress(Exception):
            client.shutdown()
