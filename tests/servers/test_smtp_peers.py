"""The fault-injection SMTP peers, checked with the real client (smtplib) that replybridge uses.

Hint tests rely on each peer producing one exact smtplib exception; these tests pin those down.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Callable

import pytest

from tests.servers import smtp_peers
from tests.servers.certs import CertPair
from tests.servers.smtp_peers import REPLIES, SmtpPeer, start_peer

# The fixtures, made visible to this module (a plugin registration would warn: already imported).
smtp_peer = smtp_peers.smtp_peer
tls_cert = smtp_peers.tls_cert

Peers = Callable[..., SmtpPeer]
SENDER = "jobs+1042@example.test"
RCPT = "candidate@example.test"
MESSAGE = (b"From: jobs+1042@example.test\r\nTo: candidate@example.test\r\nSubject: Interview\r\n\r\n"
           b"Hello,\r\n.a line that starts with a dot\r\n\xc3\xa9 8-bit byte\r\n")


def client_context(cert: CertPair) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert.cafile))


def connect(peer: SmtpPeer, tls: str = "none", cert: CertPair | None = None, *, host: str = "127.0.0.1",
            timeout: float = 5) -> smtplib.SMTP:
    """Connect like a client configured for `tls` would: implicit TLS, STARTTLS, or plain."""
    if tls == "ssl":
        assert cert is not None
        return smtplib.SMTP_SSL(host, peer.port, context=client_context(cert), timeout=timeout)
    client = smtplib.SMTP(host, peer.port, timeout=timeout)
    if tls == "starttls":
        assert cert is not None
        client.starttls(context=client_context(cert))
    return client


def send(peer: SmtpPeer, tls: str = "none", cert: CertPair | None = None,
         login: tuple[str, str] | None = None) -> dict[str, tuple[int, bytes]]:
    client = connect(peer, tls, cert)
    try:
        if login:
            client.login(*login)
        return client.sendmail(SENDER, [RCPT], MESSAGE)
    finally:
        client.close()


# --- accept, TLS and AUTH -------------------------------------------------------------------------------

def test_accept_records_the_exact_bytes(smtp_peer: Peers) -> None:
    peer = smtp_peer("accept")
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        assert client.sendmail(SENDER, [RCPT, "second@example.test"], MESSAGE) == {}
        assert "auth" not in client.esmtp_features
        assert "starttls" not in client.esmtp_features
    assert len(peer.received) == 1
    got = peer.received[0]
    assert got.mail_from == SENDER
    assert got.rcpt_tos == [RCPT, "second@example.test"]
    assert got.data == MESSAGE  # dot-stuffing undone, CRLFs and 8-bit bytes intact


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_tls_modes_verify_against_the_test_ca(smtp_peer: Peers, tls_cert: CertPair, tls: str,
                                              host: str) -> None:
    peer = smtp_peer("accept", tls=tls, cert=tls_cert)
    client = connect(peer, tls, tls_cert, host=host)
    try:
        assert isinstance(client.sock, ssl.SSLSocket)
        client.ehlo_or_helo_if_needed()
        assert "auth" not in client.esmtp_features
        assert client.sendmail(SENDER, [RCPT], MESSAGE) == {}
    finally:
        client.quit()
    assert [r.data for r in peer.received] == [MESSAGE]


def test_starttls_is_offered_and_required(smtp_peer: Peers, tls_cert: CertPair) -> None:
    peer = smtp_peer("accept", tls="starttls", cert=tls_cert)
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            client.sendmail(SENDER, [RCPT], MESSAGE)
    assert (info.value.smtp_code, info.value.smtp_error) == (530, b"Must issue a STARTTLS command first")
    assert peer.received == []


def test_implicit_tls_client_on_starttls_port_gets_ssl_error(smtp_peer: Peers, tls_cert: CertPair) -> None:
    peer = smtp_peer("accept", tls="starttls", cert=tls_cert)
    with pytest.raises(ssl.SSLError, match="WRONG_VERSION_NUMBER"):
        connect(peer, "ssl", tls_cert)


def test_untrusted_certificate_fails_verification(smtp_peer: Peers, tls_cert: CertPair) -> None:
    peer = smtp_peer("accept", tls="ssl", cert=tls_cert)
    with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
        smtplib.SMTP_SSL(peer.host, peer.port, context=ssl.create_default_context(), timeout=5)


@pytest.mark.parametrize("tls", ["none", "starttls", "ssl"])
def test_auth_right_credentials_are_required_and_accepted(smtp_peer: Peers, tls_cert: CertPair,
                                                          tls: str) -> None:
    peer = smtp_peer("accept", tls=tls, cert=tls_cert, auth=("user@example.test", "s3cret"))
    client = connect(peer, tls, tls_cert)
    try:
        client.ehlo()
        assert set(client.esmtp_features["auth"].split()) == {"LOGIN", "PLAIN"}
        assert client.login("user@example.test", "s3cret")[0] == 235
        assert client.sendmail(SENDER, [RCPT], MESSAGE) == {}
    finally:
        client.quit()
    assert len(peer.received) == 1


def test_auth_not_offered_on_plain_text_before_starttls(smtp_peer: Peers, tls_cert: CertPair) -> None:
    peer = smtp_peer("accept", tls="starttls", cert=tls_cert, auth=("u", "p"))
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        client.starttls(context=client_context(tls_cert))
        client.ehlo()
        assert client.has_extn("auth")


def test_auth_wrong_credentials_get_535_5_7_8(smtp_peer: Peers) -> None:
    peer = smtp_peer("accept", auth=("user@example.test", "s3cret"))
    with pytest.raises(smtplib.SMTPAuthenticationError) as info:
        send(peer, login=("user@example.test", "wrong"))
    assert (info.value.smtp_code, info.value.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")


def test_auth_required_before_mail(smtp_peer: Peers) -> None:
    peer = smtp_peer("accept", auth=("u", "p"))
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(peer)
    assert (info.value.smtp_code, info.value.smtp_error) == (530, b"5.7.0 Authentication required")


def test_no_auth_offered_without_auth(smtp_peer: Peers) -> None:
    peer = smtp_peer("accept")
    with pytest.raises(smtplib.SMTPNotSupportedError, match="SMTP AUTH extension not supported by server"):
        send(peer, login=("u", "p"))
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        client.ehlo()
        assert client.docmd("AUTH", "PLAIN AHUAcA==") == (503, b"5.5.1 Error: authentication not enabled")


# --- rejections -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", ["none", "starttls", "ssl"])
def test_auth_535_whatever_the_credentials(smtp_peer: Peers, tls_cert: CertPair, tls: str) -> None:
    peer = smtp_peer("auth_535", tls=tls, cert=tls_cert)
    with pytest.raises(smtplib.SMTPAuthenticationError) as info:
        send(peer, tls, tls_cert, login=("user@example.test", "anything"))
    assert (info.value.smtp_code, info.value.smtp_error) == (535, b"5.7.3 Authentication unsuccessful")


def test_auth_535_still_requires_auth(smtp_peer: Peers) -> None:
    peer = smtp_peer("auth_535")
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(peer)
    assert info.value.smtp_code == 530


REJECTIONS: list[tuple[str, type[smtplib.SMTPException]]] = [
    ("relay_denied", smtplib.SMTPRecipientsRefused),
    ("mailbox_full_452", smtplib.SMTPRecipientsRefused),
    ("reject_550_user", smtplib.SMTPRecipientsRefused),
    ("send_as_denied", smtplib.SMTPSenderRefused),
    ("send_as_denied_data", smtplib.SMTPDataError),
    ("tempfail_451", smtplib.SMTPDataError),
]


def reply_of(error: smtplib.SMTPException) -> tuple[int, bytes]:
    """(code, text) from any smtplib rejection; RecipientsRefused holds one per recipient."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        assert list(error.recipients) == [RCPT]
        return error.recipients[RCPT]
    assert isinstance(error, smtplib.SMTPResponseException)
    return error.smtp_code, error.smtp_error


@pytest.mark.parametrize("tls", ["none", "ssl"])
@pytest.mark.parametrize(("behaviour", "exc_type"), REJECTIONS)
def test_rejection_reaches_smtplib_as_the_right_exception(smtp_peer: Peers, tls_cert: CertPair, tls: str,
                                                          behaviour: str,
                                                          exc_type: type[smtplib.SMTPException]) -> None:
    peer = smtp_peer(behaviour, tls=tls, cert=tls_cert)
    with pytest.raises(exc_type) as info:
        send(peer, tls, tls_cert)
    code, text = REPLIES[behaviour].split(" ", 1)
    assert reply_of(info.value) == (int(code), text.encode())
    assert peer.received == []


def test_rejection_exact_texts() -> None:
    """The wording hint tests will match on, spelled out once."""
    assert REPLIES == {
        "auth_535": "535 5.7.3 Authentication unsuccessful",
        "auth_535_basic_disabled": "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. "
                                   "[AM0PR02CA0107.eurprd02.prod.outlook.com 2024-05-06T10:11:12.345Z "
                                   "08DC6C9F1E2A3B4C]",
        "relay_denied": "550 5.7.1 Unable to relay",
        "send_as_denied": "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
        "send_as_denied_data": "554 5.2.252 SendAsDenied; user@example.test not allowed to send as "
                               "jobs+1042@example.test; STOREDRV.Submission.Exception:"
                               "SendAsDeniedException.MapiExceptionSendAsDenied",
        "tempfail_451": "451 4.3.0 Temporary server error, try again later",
        "mailbox_full_452": "452 4.2.2 Mailbox full",
        "reject_550_user": "550 5.1.1 User unknown",
    }


# --- drops, silence, wrong protocol --------------------------------------------------------------------

def test_drop_after_ehlo(smtp_peer: Peers) -> None:
    peer = smtp_peer("drop_after_ehlo")
    client = smtplib.SMTP(peer.host, peer.port, timeout=5)
    try:
        assert client.ehlo()[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected, match=r"^Connection unexpectedly closed$"):
            client.sendmail(SENDER, [RCPT], MESSAGE)
    finally:
        client.close()


@pytest.mark.parametrize("behaviour", ["drop_at_data", "drop_after_data"])
@pytest.mark.parametrize("tls", ["none", "ssl"])
def test_drop_during_data(smtp_peer: Peers, tls_cert: CertPair, behaviour: str, tls: str) -> None:
    peer = smtp_peer(behaviour, tls=tls, cert=tls_cert)
    client = connect(peer, tls, tls_cert)
    try:
        assert client.ehlo()[0] == 250
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(RCPT)[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected, match=r"^Connection unexpectedly closed$"):
            client.data(MESSAGE)
    finally:
        client.close()
    assert peer.received == []


def test_silent_peer_times_out(smtp_peer: Peers) -> None:
    peer = smtp_peer("silent")
    started = time.monotonic()
    with pytest.raises(smtplib.SMTPServerDisconnected, match="^Connection unexpectedly closed: timed out$") as info:
        smtplib.SMTP(peer.host, peer.port, timeout=1)
    # smtplib wraps the socket timeout; the TimeoutError is the exception's context.
    assert isinstance(info.value.__context__, TimeoutError)
    assert 0.9 < time.monotonic() - started < 3
    assert peer.connections == 1


def test_silent_peer_times_out_tls_handshake(smtp_peer: Peers, tls_cert: CertPair) -> None:
    peer = smtp_peer("silent", tls="ssl")
    with pytest.raises(TimeoutError, match="handshake operation timed out"):
        smtplib.SMTP_SSL(peer.host, peer.port, context=client_context(tls_cert), timeout=0.5)


def test_silent_peer_stops_promptly_with_a_client_connected() -> None:
    peer = start_peer("silent")
    held = socket.create_connection((peer.host, peer.port), timeout=2)
    try:
        deadline = time.monotonic() + 2
        while peer.connections < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert peer.connections == 1
        started = time.monotonic()
        peer.stop()
        assert time.monotonic() - started < 1
        assert held.recv(10) == b""  # the peer closed the accepted socket
    finally:
        held.close()
        peer.stop()


def test_plain_banner_breaks_an_implicit_tls_client(smtp_peer: Peers, tls_cert: CertPair) -> None:
    peer = smtp_peer("plain_banner")
    with pytest.raises(ssl.SSLError, match="WRONG_VERSION_NUMBER"):
        smtplib.SMTP_SSL(peer.host, peer.port, context=client_context(tls_cert), timeout=2)


def test_plain_banner_refuses_every_command(smtp_peer: Peers) -> None:
    peer = smtp_peer("plain_banner")
    client = smtplib.SMTP(timeout=2)
    try:
        assert client.connect(peer.host, peer.port) == (220, b"plain.example.test ESMTP")
        assert client.ehlo() == (502, b"5.5.2 Error: command not recognized")
    finally:
        client.close()
    fresh = smtplib.SMTP(peer.host, peer.port, timeout=2)
    try:
        with pytest.raises(smtplib.SMTPHeloError) as info:  # EHLO, then HELO, both refused
            fresh.sendmail(SENDER, [RCPT], MESSAGE)
        assert (info.value.smtp_code, info.value.smtp_error) == (502, b"5.5.2 Error: command not recognized")
    finally:
        fresh.close()
    assert peer.connections == 2


def test_plain_client_on_implicit_tls_port_times_out(smtp_peer: Peers, tls_cert: CertPair) -> None:
    peer = smtp_peer("accept", tls="ssl", cert=tls_cert)
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtplib.SMTP(peer.host, peer.port, timeout=0.5)


# --- connection counting and fail_times ------------------------------------------------------------------

@pytest.mark.parametrize("tls", ["none", "starttls", "ssl"])
def test_connections_counts_tcp_connections(smtp_peer: Peers, tls_cert: CertPair, tls: str) -> None:
    peer = smtp_peer("accept", tls=tls, cert=tls_cert)
    assert peer.connections == 0  # aiosmtpd's start-up probe is not counted
    client = connect(peer, tls, tls_cert)
    try:
        for _ in range(3):
            client.sendmail(SENDER, [RCPT], MESSAGE)
    finally:
        client.quit()
    assert peer.connections == 1  # STARTTLS does not count as a new connection
    send(peer, tls, tls_cert)
    assert peer.connections == 2
    assert len(peer.received) == 4


def test_tempfail_451_fail_times_then_accepts_on_the_same_connection(smtp_peer: Peers) -> None:
    peer = smtp_peer("tempfail_451", fail_times=2)
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError) as info:
                client.sendmail(SENDER, [RCPT], MESSAGE)
            assert info.value.smtp_code == 451
        assert client.sendmail(SENDER, [RCPT], MESSAGE) == {}
        assert client.sendmail(SENDER, [RCPT], MESSAGE) == {}
    assert [r.data for r in peer.received] == [MESSAGE, MESSAGE]
    assert peer.connections == 1


def test_fail_times_counts_messages_not_recipients(smtp_peer: Peers) -> None:
    peer = smtp_peer("relay_denied", fail_times=1)
    recipients = [RCPT, "other@example.test"]
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            client.sendmail(SENDER, recipients, MESSAGE)
        assert set(info.value.recipients) == set(recipients)
        assert client.sendmail(SENDER, recipients, MESSAGE) == {}
    assert peer.received[0].rcpt_tos == recipients


@pytest.mark.parametrize("behaviour", ["send_as_denied", "send_as_denied_data", "mailbox_full_452",
                                       "reject_550_user", "drop_after_ehlo", "drop_at_data"])
def test_fail_times_applies_to_other_behaviours(smtp_peer: Peers, behaviour: str) -> None:
    peer = smtp_peer(behaviour, fail_times=1)
    with pytest.raises(smtplib.SMTPException):
        send(peer)
    assert send(peer) == {}
    assert len(peer.received) == 1


def test_auth_535_fail_times_counts_connections(smtp_peer: Peers) -> None:
    peer = smtp_peer("auth_535", fail_times=1)
    # smtplib tries PLAIN then LOGIN on one connection; both get 535.
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send(peer, login=("u", "p"))
    assert send(peer, login=("u", "p")) == {}
    assert peer.connections == 2


def test_auth_535_fail_times_then_checks_configured_credentials(smtp_peer: Peers) -> None:
    peer = smtp_peer("auth_535", fail_times=1, auth=("u", "right"))
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send(peer, login=("u", "right"))
    with pytest.raises(smtplib.SMTPAuthenticationError) as info:
        send(peer, login=("u", "wrong"))
    assert info.value.smtp_error == b"5.7.8 Authentication credentials invalid"
    assert send(peer, login=("u", "right")) == {}


# --- lifecycle -------------------------------------------------------------------------------------------

def test_stop_closes_open_client_connections_and_is_idempotent(tls_cert: CertPair) -> None:
    peer = start_peer("accept", tls="starttls", cert=tls_cert)
    client = connect(peer, "starttls", tls_cert)
    try:
        assert client.noop()[0] == 250
        started = time.monotonic()
        peer.stop()
        peer.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()


@pytest.mark.parametrize(("args", "kwargs"), [
    (("nonsense",), {}),
    (("accept",), {"tls": "tls"}),
    (("accept",), {"tls": "ssl"}),  # no cert
    (("plain_banner",), {"tls": "ssl"}),
    (("silent",), {"auth": ("u", "p")}),
    (("accept",), {"fail_times": -1}),
])
def test_start_peer_rejects_bad_arguments(args: tuple[str, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        start_peer(*args, **kwargs)  # type: ignore[arg-type]
