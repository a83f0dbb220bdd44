"""The verdicts and hints, from Failures alone (the SMTP tests produce them from real exchanges)."""

import pytest

from bridge.diagnosis import Endpoint, Failure, diagnose

SMTP_587 = Endpoint("smtp.example.test", 587, "starttls", 10.0, "u")


@pytest.mark.parametrize("failure, temporary, words", [
    (Failure("reply", "auth", 535, "5.7.3 Authentication unsuccessful"), False, "app password"),
    (Failure("reply", "auth", 535, "5.7.139 Authentication unsuccessful, basic authentication is disabled"),
     False, "Sign in with Microsoft"),
    (Failure("reply", "rcpt", 550, "5.7.1 Unable to relay"), False, "relay"),
    (Failure("reply", "mail", 550, "5.7.60 SMTP; Client does not have permissions to send as this sender"),
     False, "Send As"),
    (Failure("reply", "data", 554, "5.2.252 SendAsDenied; not allowed"), False, "reply-to"),
    (Failure("reply", "data", 451, "4.3.0 Temporary server error"), True, "retries"),
    (Failure("reply", "rcpt", 452, "4.2.2 Mailbox full"), True, "full"),
    (Failure("reply", "rcpt", 550, "5.1.1 User unknown"), False, "does not exist"),
    (Failure("timeout", "connect"), True, "firewall"),
    (Failure("refused", "connect"), True, "connection refused"),
    (Failure("dns", "connect", text="host name not found"), True, "cannot be resolved"),
    (Failure("tls", "connect", text="WRONG_VERSION_NUMBER"), False, "465"),
    (Failure("cert", "tls", text="certificate verify failed"), False, "--ca-file"),
    (Failure("no_starttls", "tls"), False, "STARTTLS"),
    (Failure("disconnected", "mail"), True, "closed the connection"),
])
def test_hints(failure: Failure, temporary: bool, words: str) -> None:
    verdict = diagnose(failure, SMTP_587, "jobs+1042@example.test")
    assert verdict.temporary is temporary
    assert words.lower() in verdict.hint.lower()


def test_timeout_on_465_without_ssl_names_the_mode_mismatch() -> None:
    hint = diagnose(Failure("timeout", "connect"), Endpoint("h.test", 465, "starttls", 5.0)).hint
    assert "port 465 uses `ssl`" in hint


def test_imap_mode_hint_names_imap_ports() -> None:
    hint = diagnose(Failure("tls", "connect", text="x"), Endpoint("h.test", 143, "ssl", protocol="imap")).hint
    assert "993" in hint and "143" in hint


def test_send_as_hint_names_the_address() -> None:
    f = Failure("reply", "mail", 550, "5.7.60 SMTP; Client does not have permissions to send as this sender")
    assert "jobs+1042@example.test" in diagnose(f, SMTP_587, "jobs+1042@example.test").hint
