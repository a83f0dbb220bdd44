"""Real SMTP servers on loopback that misbehave on purpose, for testing our SMTP client.

replybridge must explain every send failure with a hint, so its tests need the failures to be
genuine: a real TCP connection, a real TLS handshake and the exact replies real providers send
(Microsoft 365 wording included). Most behaviours are aiosmtpd's threaded `Controller` with
handler hooks; the two that no SMTP server would produce (never greeting, and a plain-text banner
where TLS was expected) are a small raw-socket server. The `xoauth2` behaviour is Microsoft 365 with
basic authentication turned off: it takes `AUTH XOAUTH2` / `AUTH OAUTHBEARER` with a bearer token that a
callback checks (e.g. tests.servers.oauth's `token_check`) and refuses PLAIN/LOGIN with 535 5.7.139.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from tests.servers.certs import CertPair, make_cert

HOST = "127.0.0.1"
SERVER_NAME = "localhost"  # Greeting name; also avoids aiosmtpd's per-connection socket.getfqdn() lookup.
PLAIN_BANNER = b"220 plain.example.test ESMTP\r\n"
NOT_RECOGNIZED = b"502 5.5.2 Error: command not recognized\r\n"
AUTH_NOT_ENABLED = "503 5.5.1 Error: authentication not enabled"
# The xoauth2 behaviour's replies, as Microsoft 365 words them: PLAIN/LOGIN while basic authentication is
# disabled, and a bad or expired bearer token.
BASIC_AUTH_DISABLED = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled."
OAUTH_REFUSED = "535 5.7.3 Authentication unsuccessful"

# Rejecting behaviours: the reply the server gives, and the stage at which it gives it.
REPLIES: dict[str, str] = {
    "auth_535": "535 5.7.3 Authentication unsuccessful",
    "auth_535_basic_disabled": (
        "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
        "[AM0PR02CA0107.eurprd02.prod.outlook.com 2024-05-06T10:11:12.345Z 08DC6C9F1E2A3B4C]"
    ),
    "relay_denied": "550 5.7.1 Unable to relay",
    "send_as_denied": "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
    "send_as_denied_data": (
        "554 5.2.252 SendAsDenied; user@example.test not allowed to send as jobs+1042@example.test; "
        "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
    ),
    "tempfail_451": "451 4.3.0 Temporary server error, try again later",
    "mailbox_full_452": "452 4.2.2 Mailbox full",
    "reject_550_user": "550 5.1.1 User unknown",
}
_STAGES: dict[str, str] = {
    "auth_535": "AUTH",
    "auth_535_basic_disabled": "AUTH",
    "relay_denied": "RCPT",
    "mailbox_full_452": "RCPT",
    "reject_550_user": "RCPT",
    "send_as_denied": "MAIL",
    "drop_after_ehlo": "MAIL",
    "send_as_denied_data": "DATA_END",
    "tempfail_451": "DATA_END",
    "drop_after_data": "DATA_END",
    "drop_at_data": "DATA_CMD",
}
SMTP_BEHAVIOURS = frozenset({"accept", "xoauth2", *_STAGES})
RAW_BEHAVIOURS = frozenset({"silent", "plain_banner"})
BEHAVIOURS = SMTP_BEHAVIOURS | RAW_BEHAVIOURS
TLS_MODES = frozenset({"none", "starttls", "ssl"})


@dataclass
class OAuthAttempt:
    """One XOAUTH2/OAUTHBEARER login the peer saw, and whether the token was accepted."""

    mechanism: str
    user: str
    token: str
    accepted: bool


TokenCheck = Callable[[str, str], bool]  # (user, access token) -> valid?


@dataclass
class Received:
    """One message the peer accepted, as it arrived on the wire."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    connection: int = 0  # the serial of the connection it came on (1, 2, ...)


class SmtpPeer:
    """A running server: where to connect, what it accepted, and how many connections it saw."""

    def __init__(self, behaviour: str, host: str, port: int) -> None:
        self.behaviour = behaviour
        self.host = host
        self.port = port
        self.received: list[Received] = []
        self.oauth_attempts: list[OAuthAttempt] = []
        self._connections = 0
        self._serials = 0
        self.quit_on: set[int] = set()  # the connections that ended with QUIT
        self._lock = threading.Lock()
        self._stopper: Callable[[], None] = lambda: None
        self._stopped = False

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (aiosmtpd's own start-up probe excluded)."""
        with self._lock:
            return self._connections

    def _count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def _next_serial(self) -> int:
        with self._lock:
            self._serials += 1
            return self._serials

    def unfinished(self, item: Received) -> bool:
        """Whether `item` was the last message of a connection that ended without QUIT: its sender may have
        died before it read (or recorded) the 250, so sending it again is what RFC 5321 (section 6.1) expects."""
        with self._lock:
            later = [r for r in self.received if r.connection == item.connection]
            return later[-1] is item and item.connection not in self.quit_on

    def _reset_connections(self) -> None:
        with self._lock:
            self._connections = 0

    def _record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)

    def _record_oauth(self, item: OAuthAttempt) -> None:
        with self._lock:
            self.oauth_attempts.append(item)

    def stop(self) -> None:
        """Close every open connection and the listener; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stopper()

    def __repr__(self) -> str:
        return f"SmtpPeer({self.behaviour!r}, {self.host}:{self.port})"


class _FailureBudget:
    """Decides whether the next attempt is rejected: always, or only the first `fail_times`."""

    def __init__(self, fail_times: int) -> None:
        self._left = fail_times
        self._always = fail_times <= 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self._always:
            return True
        with self._lock:
            if self._left > 0:
                self._left -= 1
                return True
            return False


class _PeerSMTP(SMTP):
    """aiosmtpd's SMTP with the hooks it lacks: a drop at the DATA command and per-connection state."""

    def __init__(self, handler: _Handler, *, auth_required: bool, **kwargs: Any) -> None:
        # aiosmtpd warns (UserWarning, on every connection) when AUTH is required without TLS;
        # that is deliberate here, so the flag is set after construction instead.
        super().__init__(handler, auth_required=False, **kwargs)
        self._auth_required = auth_required
        self.peer_handler = handler
        self.serial = 0  # set when the connection is made (SmtpPeer._next_serial)
        self.auth_fails: bool | None = None  # decided once per connection (see _Handler.authenticate)
        self.rcpt_decision: tuple[Envelope, bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self.serial = self.peer_handler.peer._next_serial()
            self.peer_handler.live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.peer_handler.live.discard(self)
        super().connection_lost(error)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        handler = self.peer_handler
        if (handler.behaviour == "drop_at_data" and self.envelope is not None and self.envelope.rcpt_tos
                and self.session is not None and self.session.host_name and not arg
                and handler.budget.take()):
            await _drop(self)
        await super().smtp_DATA(arg)


async def _drop(server: SMTP) -> None:
    """Close the connection without a reply, then wait to be cancelled by connection_lost."""
    assert server.transport is not None
    server.transport.close()
    await asyncio.get_running_loop().create_future()


class _Handler:
    """aiosmtpd handler implementing one behaviour; everything not rejected is accepted."""

    def __init__(self, peer: SmtpPeer, behaviour: str, tls: str, auth: tuple[str, str] | None,
                 fail_times: int) -> None:
        self.peer = peer
        self.behaviour = behaviour
        self.tls = tls
        self.auth = auth
        self.stage = _STAGES.get(behaviour)
        self.budget = _FailureBudget(fail_times)
        self.live: set[_PeerSMTP] = set()  # touched only from the server's event loop

    def offers_auth(self) -> bool:
        return self.auth is not None or self.stage == "AUTH" or self.behaviour == "xoauth2"

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        # With this 5-argument hook aiosmtpd no longer records the EHLO name itself.
        session.host_name = hostname
        hide_auth = not self.offers_auth() or (self.tls == "starttls" and session.ssl is None)
        if hide_auth:
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        return responses

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        """aiosmtpd authenticator; PLAIN and LOGIN both hand over a LoginPassword."""
        if not self.offers_auth():
            # AUTH is hidden from EHLO; a client that sends it anyway is refused, not let in.
            return AuthResult(success=False, handled=False, message=AUTH_NOT_ENABLED)
        if self.behaviour == "xoauth2":  # the bearer mechanisms live on _OAuthHandler; this is PLAIN/LOGIN
            return AuthResult(success=False, handled=False, message=BASIC_AUTH_DISABLED)
        if self.stage == "AUTH":
            # Decided per connection: smtplib's login() tries PLAIN and then LOGIN on the same
            # connection, so a per-attempt budget would let the second mechanism through.
            assert isinstance(server, _PeerSMTP)
            if server.auth_fails is None:
                server.auth_fails = self.budget.take()
            if server.auth_fails:
                return AuthResult(success=False, handled=False, message=REPLIES[self.behaviour])
        if self.auth is None:
            return AuthResult(success=True, auth_data=auth_data)
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode("utf-8", "replace"), auth_data.password.decode("utf-8", "replace")
        ) == self.auth
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.stage == "MAIL" and self.budget.take():
            if self.behaviour == "drop_after_ehlo":
                await _drop(server)
            return REPLIES[self.behaviour]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.stage == "RCPT":
            # One decision per transaction, so fail_times counts messages, not recipients.
            assert isinstance(server, _PeerSMTP)
            if server.rcpt_decision is None or server.rcpt_decision[0] is not envelope:
                server.rcpt_decision = (envelope, self.budget.take())
            if server.rcpt_decision[1]:
                return REPLIES[self.behaviour]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.stage == "DATA_END" and self.budget.take():
            if self.behaviour == "drop_after_data":
                await _drop(server)
            return REPLIES[self.behaviour]
        raw = envelope.original_content
        if raw is None:
            content = envelope.content
            raw = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content or b""
        self.peer._record(Received(envelope.mail_from or "", list(envelope.rcpt_tos), raw,
                                   getattr(server, "serial", 0)))
        return "250 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.peer._lock:
            self.peer.quit_on.add(getattr(server, "serial", 0))
        return "221 Bye"


class _OAuthHandler(_Handler):
    """The xoauth2 behaviour: aiosmtpd advertises and dispatches every `auth_*` method of the handler.

    A refused token gets what Microsoft and Google send: a 334 challenge carrying a base64 JSON error,
    which the client answers with an empty line (XOAUTH2) or ^A (OAUTHBEARER), and then 535.
    """

    def __init__(self, peer: SmtpPeer, tls: str, token_check: TokenCheck) -> None:
        super().__init__(peer, "xoauth2", tls, None, 0)
        self.token_check = token_check

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's naming
        """XOAUTH2: base64 of "user=U^Aauth=Bearer T^A^A"."""
        return await self._bearer(server, args, "XOAUTH2", _parse_xoauth2)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        """OAUTHBEARER (RFC 7628): base64 of "n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A"."""
        return await self._bearer(server, args, "OAUTHBEARER", _parse_oauthbearer)

    async def _bearer(self, server: SMTP, args: list[str], mechanism: str,
                      parse: Callable[[bytes], tuple[str, str] | None]) -> AuthResult:
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            response = await server.challenge_auth("")
            if not isinstance(response, bytes):  # the client sent "*" or bad base64: already answered
                return AuthResult(success=False, handled=True)
            blob = response
        parsed = parse(blob)
        if parsed is None:
            await server.push(f"501 5.5.2 Malformed {mechanism} response")
            return AuthResult(success=False, handled=True)
        user, token = parsed
        # The check may be an HTTP introspection call: keep it off the event loop.
        ok = await asyncio.get_running_loop().run_in_executor(None, self.token_check, user, token)
        self.peer._record_oauth(OAuthAttempt(mechanism, user, token, ok))
        if ok:
            return AuthResult(success=True, auth_data=user)
        status = {"status": "401", "schemes": "bearer", "scope": "https://outlook.office.com/SMTP.Send"}
        answer = await server.challenge_auth(json.dumps(status))
        if not isinstance(answer, bytes):
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=OAUTH_REFUSED)


def _parse_xoauth2(blob: bytes) -> tuple[str, str] | None:
    fields = dict(part.split("=", 1) for part in blob.decode("utf-8", "replace").split("\x01") if "=" in part)
    return _user_and_token(fields.get("user"), fields.get("auth"))


def _parse_oauthbearer(blob: bytes) -> tuple[str, str] | None:
    header, _, rest = blob.decode("utf-8", "replace").partition("\x01")
    user = next((item[2:] for item in header.split(",") if item.startswith("a=")), None)
    fields = dict(part.split("=", 1) for part in rest.split("\x01") if "=" in part)
    return _user_and_token(user, fields.get("auth"))


def _user_and_token(user: str | None, auth: str | None) -> tuple[str, str] | None:
    if not user or not auth or not auth.lower().startswith("bearer "):
        return None
    return user, auth[7:].strip()


def _listening_socket() -> socket.socket:
    """Bind port 0 and keep the socket, so no other process can take the port before we listen.

    proto must be IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says
    TCP, and with Nagle on, every multi-line reply (EHLO) stalls ~40 ms on the client's delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(64)
    return sock


class _PeerController(Controller):
    """Controller that serves on a pre-bound socket and counts every TCP connection."""

    def __init__(self, handler: _Handler, sock: socket.socket, *, ssl_context: ssl.SSLContext | None,
                 **smtp_kwargs: Any) -> None:
        super().__init__(handler, hostname=HOST, port=sock.getsockname()[1], ssl_context=ssl_context,
                         server_hostname=SERVER_NAME, ready_timeout=5.0, **smtp_kwargs)
        self._sock = sock
        self.peer_handler = handler

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def _trigger_server(self) -> None:
        # Same probe as aiosmtpd's, minus its client SSLContext built on the system CA store (~50 ms
        # per peer). A full handshake is kept: an aborted one is logged as an error in asyncio debug mode.
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((HOST, self.port), timeout=1.0))
            if self.ssl_context is not None:
                probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                probe.check_hostname = False
                probe.verify_mode = ssl.CERT_NONE
                sock = stack.enter_context(probe.wrap_socket(sock))
            sock.recv(1024)

    def factory(self) -> SMTP:
        # Called once per accepted TCP connection (before any TLS handshake), never for STARTTLS.
        self.peer_handler.peer._count_connection()
        return _PeerSMTP(self.peer_handler, loop=self.loop, **self.SMTP_kwargs)

    async def _abort_all(self) -> None:
        for server in list(self.peer_handler.live):
            if server.transport is not None:
                server.transport.abort()
        for turn in range(100):  # connection_lost arrives a few loop turns later (later still with TLS)
            if not self.peer_handler.live:
                break
            await asyncio.sleep(0 if turn < 20 else 0.01)

    def shutdown(self) -> None:
        """Abort client connections first: Controller.stop() alone can leave their sockets open."""
        if self._thread is not None:
            if self.loop.is_running():
                with contextlib.suppress(RuntimeError, TimeoutError):
                    asyncio.run_coroutine_threadsafe(self._abort_all(), self.loop).result(timeout=5)
            self.stop()
        self._sock.close()


def _server_context(cert: CertPair) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert.certfile), str(cert.keyfile))
    return ctx


def _start_smtp(behaviour: str, tls: str, cert: CertPair | None, auth: tuple[str, str] | None,
                fail_times: int, token_check: TokenCheck | None = None) -> SmtpPeer:
    sock = _listening_socket()
    peer = SmtpPeer(behaviour, HOST, sock.getsockname()[1])
    if behaviour == "xoauth2":
        assert token_check is not None
        handler: _Handler = _OAuthHandler(peer, tls, token_check)
    else:
        handler = _Handler(peer, behaviour, tls, auth, fail_times)
    kwargs: dict[str, Any] = {
        "auth_required": handler.offers_auth(),
        # Implicit TLS does not count as TLS for aiosmtpd's auth_require_tls (only STARTTLS does).
        "auth_require_tls": False,
        "authenticator": handler.authenticate,
        "timeout": 30,
    }
    ctx = _server_context(cert) if cert is not None and tls != "none" else None
    if tls == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    controller = _PeerController(handler, sock, ssl_context=ctx if tls == "ssl" else None, **kwargs)
    try:
        controller.start()
    except BaseException:
        controller.shutdown()
        raise
    # start() makes one probe connection to force aiosmtpd's lazy set-up; it is not a client's.
    peer._reset_connections()
    peer._stopper = controller.shutdown
    return peer


class _RawServer:
    """A selector loop in one thread: never greets (`silent`), or greets in plain text and refuses
    everything (`plain_banner`). Polls a stop flag so stop() never blocks on a socket."""

    def __init__(self, peer: SmtpPeer, behaviour: str, sock: socket.socket) -> None:
        self.peer = peer
        self.behaviour = behaviour
        self.sock = sock
        self.sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ, None)
        self.buffers: dict[socket.socket, bytes] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"smtp-peer-{behaviour}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                for key, _ in self.selector.select(timeout=0.02):
                    if key.fileobj is self.sock:
                        self._accept()
                    else:
                        assert isinstance(key.fileobj, socket.socket)
                        self._readable(key.fileobj)
        finally:
            for conn in list(self.buffers):
                self._close(conn)
            self.selector.close()
            self.sock.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        self.peer._count_connection()
        self.buffers[conn] = b""
        if self.behaviour == "plain_banner":
            conn.sendall(PLAIN_BANNER)
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ, None)

    def _readable(self, conn: socket.socket) -> None:
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(conn)
            return
        if self.behaviour != "plain_banner":
            return  # silent: swallow whatever the client sends
        buffered = self.buffers[conn] + chunk
        *lines, rest = buffered.split(b"\n")
        self.buffers[conn] = rest
        try:
            for _ in lines:
                conn.sendall(NOT_RECOGNIZED)
        except OSError:
            self._close(conn)

    def _close(self, conn: socket.socket) -> None:
        self.buffers.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


def _start_raw(behaviour: str) -> SmtpPeer:
    sock = _listening_socket()
    peer = SmtpPeer(behaviour, HOST, sock.getsockname()[1])
    server = _RawServer(peer, behaviour, sock)
    peer._stopper = server.stop
    return peer


def start_peer(behaviour: str = "accept", *, tls: str = "none", cert: CertPair | None = None,
               auth: tuple[str, str] | None = None, fail_times: int = 0,
               token_check: TokenCheck | None = None) -> SmtpPeer:
    """Start a server on 127.0.0.1 with a free port; the caller must stop() it.

    `tls`: "none", "starttls" (offered and required) or "ssl" (implicit TLS); the latter two need
    `cert`. `auth=(user, password)` offers AUTH PLAIN/LOGIN and requires it before MAIL.
    `fail_times=N` limits a rejecting behaviour to its first N attempts (messages, or connections
    for auth_535/drop_*), after which the peer accepts like "accept".
    "xoauth2" requires AUTH by XOAUTH2 or OAUTHBEARER, asking `token_check(user, token)` whether the
    bearer token is good (every attempt is kept in `peer.oauth_attempts`), and refuses PLAIN/LOGIN.
    """
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; choose from {sorted(BEHAVIOURS)}")
    if tls not in TLS_MODES:
        raise ValueError(f"unknown tls mode {tls!r}; choose from {sorted(TLS_MODES)}")
    if fail_times < 0:
        raise ValueError("fail_times must be >= 0")
    if behaviour in RAW_BEHAVIOURS:
        # A silent peer sends nothing whatever TLS the client expects, so any `tls` is allowed;
        # a plain banner is by definition not TLS.
        if behaviour == "plain_banner" and tls != "none":
            raise ValueError("plain_banner is a plain-text server; use tls='none'")
        if auth is not None or fail_times:
            raise ValueError(f"{behaviour} never gets as far as AUTH or a message")
        return _start_raw(behaviour)
    if tls != "none" and cert is None:
        raise ValueError(f"tls={tls!r} needs a cert (tests.servers.certs.make_cert)")
    if (behaviour == "xoauth2") != (token_check is not None):
        raise ValueError("token_check is required by, and only used with, the xoauth2 behaviour")
    if behaviour == "xoauth2" and (auth is not None or fail_times):
        raise ValueError("xoauth2 takes no password and no fail_times; its token_check decides")
    return _start_smtp(behaviour, tls, cert, auth, fail_times, token_check)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    """A CA and a server certificate for localhost and 127.0.0.1, shared by the session."""
    return make_cert(tmp_path_factory.mktemp("smtp-peer-tls"))


@pytest.fixture
def smtp_peer() -> Iterator[Callable[..., SmtpPeer]]:
    """Factory for peers (same arguments as start_peer); every peer is stopped at teardown."""
    peers: list[SmtpPeer] = []

    def factory(behaviour: str = "accept", **kwargs: Any) -> SmtpPeer:
        peer = start_peer(behaviour, **kwargs)
        peers.append(peer)
        return peer

    yield factory
    for peer in reversed(peers):
        peer.stop()
