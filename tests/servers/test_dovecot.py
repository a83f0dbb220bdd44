"""The Dovecot harness itself: other tests rely on it behaving like a correctly configured server."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.servers.dovecot import DOVECOT_BINARY, Dovecot, start_dovecot
from tests.servers.dovecot import dovecot as dovecot_fixture  # noqa: F401  (registers fixture "dovecot")

pytestmark = pytest.mark.skipif(not DOVECOT_BINARY.exists(),
                                reason=f"Dovecot is not installed ({DOVECOT_BINARY} missing)")

MESSAGE = (
    b"From: Ana <ana@example.test>\r\n"
    b"To: Bo <bo@example.test>\r\n"
    b"Subject: =?utf-8?q?R=C3=BCckmeldung?=\r\n"
    b"Message-ID: <roundtrip-1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe,  trailing spaces   \r\n"
    b"\tindented line\r\n"
    b".leading dot\r\n"
    b"\r\n"
)

StartDovecot = Callable[..., Dovecot]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartDovecot]:
    """Start servers with non-default options; every one is stopped after the test."""
    servers: list[Dovecot] = []

    def _start(**options: Any) -> Dovecot:
        server = start_dovecot(tmp_path / f"dovecot-{len(servers)}", **options)
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()


def _context(server: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.cafile))


def _login(server: Dovecot) -> IMAPClient:
    client = IMAPClient(server.host, server.port, ssl=False, timeout=10)
    client.login(server.user, server.password)
    return client


def _raw_imap(server: Dovecot, command: bytes) -> list[bytes]:
    """Untagged lines of one command sent after LOGIN on a bare socket (imapclient has no LIST selection
    options, and this keeps the special-use check independent of client-side name guessing)."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"* OK")
        sock.sendall(b'a LOGIN "%s" "%s"\r\n' % (server.user.encode(), server.password.encode()))
        while not (line := reader.readline()).startswith(b"a "):
            pass
        assert line.startswith(b"a OK"), line
        sock.sendall(b"b " + command + b"\r\n")
        lines = []
        while not (line := reader.readline()).startswith(b"b "):
            lines.append(line.rstrip(b"\r\n"))
        assert line.startswith(b"b OK"), line
        sock.sendall(b"c LOGOUT\r\n")
    return lines


def _flags_by_name(client: IMAPClient) -> dict[str, tuple[bytes, ...]]:
    return {name: flags for flags, _delimiter, name in client.list_folders()}


def test_plain_login(dovecot: Dovecot) -> None:
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    assert b"STARTTLS" in client.capabilities()
    client.login(dovecot.user, dovecot.password)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()


def test_starttls_with_certificate_verification(dovecot: Dovecot) -> None:
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    client.starttls(_context(dovecot))
    assert isinstance(client.socket(), ssl.SSLSocket)
    client.login(dovecot.user, dovecot.password)
    client.noop()
    client.logout()


def test_starttls_rejects_an_untrusted_certificate(dovecot: Dovecot) -> None:
    """Proves verification is really on: the system trust store does not know the test CA."""
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(ssl.create_default_context())
    with suppress(OSError):  # the failed handshake may already have closed the socket
        client.shutdown()


def test_implicit_tls_on_ssl_port(dovecot: Dovecot) -> None:
    client = IMAPClient(dovecot.host, dovecot.ssl_port, ssl=True, ssl_context=_context(dovecot), timeout=10)
    assert isinstance(client.socket(), ssl.SSLSocket)
    client.login(dovecot.user, dovecot.password)
    client.noop()
    client.logout()


def test_wrong_password_is_a_login_error(dovecot: Dovecot) -> None:
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    with pytest.raises(LoginError):
        client.login(dovecot.user, dovecot.password + "x")
    client.shutdown()


def test_special_use_folders_are_flagged(dovecot: Dovecot) -> None:
    client = _login(dovecot)
    flags = _flags_by_name(client)
    client.logout()
    assert b"\\Sent" in flags["Sent"]
    assert b"\\Drafts" in flags["Drafts"]
    assert b"\\Trash" in flags["Trash"]
    special = _raw_imap(dovecot, b'LIST (SPECIAL-USE) "" "*"')
    assert b'* LIST (\\Sent) "/" Sent' in special


def test_custom_sent_name_and_extra_folders(start: StartDovecot) -> None:
    server = start(sent_name="Sent Items", extra_folders=("Archive", "Projects/2024"))
    client = _login(server)
    flags = _flags_by_name(client)
    client.logout()
    assert b"\\Sent" in flags["Sent Items"]
    assert "Sent" not in flags
    assert {"Archive", "Projects/2024"} <= flags.keys()
    assert b'* LIST (\\Sent) "/" "Sent Items"' in _raw_imap(server, b'LIST (SPECIAL-USE) "" "*"')


def test_without_special_use_no_folder_is_flagged(start: StartDovecot) -> None:
    server = start(special_use=False, sent_name="Gesendet", extra_folders=("Archive",))
    client = _login(server)
    flags = _flags_by_name(client)
    client.logout()
    assert set(flags) == {"INBOX", "Gesendet", "Archive"}
    use_flags = {b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Junk", b"\\Archive", b"\\All", b"\\Flagged"}
    assert not any(use_flags & set(folder_flags) for folder_flags in flags.values())
    assert _raw_imap(server, b'LIST (SPECIAL-USE) "" "*"') == []


def test_appended_message_round_trips_byte_for_byte(dovecot: Dovecot) -> None:
    client = _login(dovecot)
    client.append("Sent", MESSAGE, flags=(b"\\Seen",))
    client.append("Sent", b"Subject: second\r\n\r\nno final newline")
    client.logout()
    assert dovecot.folder_messages("Sent") == [MESSAGE, b"Subject: second\r\n\r\nno final newline"]
    assert dovecot.folder_flags("Sent") == [(b"\\Seen",), ()]
    assert dovecot.folder_messages("INBOX") == []
    assert dovecot.folder_flags("INBOX") == []


def test_bare_newlines_come_back_as_crlf(dovecot: Dovecot) -> None:
    """Dovecot (Maildir, mail_save_crlf=no) normalises line ends; only CRLF input round-trips exactly."""
    client = _login(dovecot)
    client.append("INBOX", b"Subject: lf\n\nbody\n")
    client.logout()
    assert dovecot.folder_messages("INBOX") == [b"Subject: lf\r\n\r\nbody\r\n"]


def test_idle_advertised_by_default(dovecot: Dovecot) -> None:
    client = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    assert client.has_capability("IDLE")
    client.login(dovecot.user, dovecot.password)
    assert client.has_capability("IDLE")
    client.logout()


def test_idle_can_be_withheld(start: StartDovecot) -> None:
    server = start(idle=False)
    client = IMAPClient(server.host, server.port, ssl=False, timeout=10)
    assert not client.has_capability("IDLE")
    client.login(server.user, server.password)
    capabilities = client.capabilities()
    client.logout()
    assert b"IDLE" not in capabilities
    assert {b"IMAP4REV1", b"UIDPLUS", b"MOVE", b"SPECIAL-USE", b"LITERAL+"} <= set(capabilities)


def test_stop_kills_the_server_and_is_idempotent(start: StartDovecot) -> None:
    server = start()
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=2).close()
