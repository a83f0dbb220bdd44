"""The verdicts and hints, from Failures alone (the SMTP tests produce them from real exchanges)."""

import pytest

from bridge.net.diagnosis import Endpoint, Failure, diagnose

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


M365 = Endpoint("smtp.office365.com", 587, "starttls", 30.0, "shared@example.test")


def test_basic_auth_disabled_points_to_sign_in_with_microsoft() -> None:
    f = Failure("reply", "auth", 535, "5.7.139 Authentication unsuccessful, basic authentication is disabled. "
                                     "[AM0PR02CA0107.eurprd02.prod.outlook.com]")
    hint = diagnose(f, M365).hint
    assert "Basic authentication (SMTP AUTH with a password) is disabled for this Microsoft 365 tenant" in hint
    assert "replybridge oauth add NAME --provider microsoft" in hint and "smtp add ACCOUNT ... --oauth NAME" in hint


def test_wrong_credentials_on_microsoft_365_name_the_shared_mailbox_way() -> None:
    f = Failure("reply", "auth", 535, "5.7.139 Authentication unsuccessful, the user credentials were incorrect.")
    hint = diagnose(f, M365).hint
    assert "check both" in hint and "Basic authentication" not in hint
    assert "If this is a shared mailbox, it has no password of its own" in hint
    assert "Send As rights" in hint and "--oauth NAME --oauth-flow app" in hint
    assert "shared mailbox" not in diagnose(f, SMTP_587).hint  # elsewhere it would only confuse


def test_smtp_auth_turned_off_for_the_mailbox() -> None:
    f = Failure("reply", "auth", 535, "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
                                     "for the Tenant.")
    assert "Authenticated SMTP (SMTP AUTH) is turned off" in diagnose(f, M365).hint


def test_imap_password_refused_by_microsoft_365() -> None:
    ep = Endpoint("outlook.office365.com", 993, "ssl", username="shared@example.test", protocol="imap")
    hint = diagnose(Failure("login", "login", text="AUTHENTICATE failed."), ep).hint
    assert "imap add ACCOUNT ... --oauth NAME" in hint and "Full Access" in hint


@pytest.mark.parametrize("kind", ["timeout", "refused", "disconnected"])
def test_unanswered_connections_name_the_outgoing_address(kind: str) -> None:
    ep = Endpoint("smtp.example.test", 587, "starttls", 10.0, local_address="203.0.113.5")
    assert "If the provider keeps an allow list, add this server's address 203.0.113.5." in diagnose(
        Failure(kind, "connect"), ep).hint
    assert "allow list, add" not in diagnose(Failure(kind, "connect"), SMTP_587).hint


def test_imap_host_given_for_smtp_is_named_with_the_smtp_host() -> None:
    hint = diagnose(Failure("timeout", "connect"), Endpoint("imap.gmail.com", 465, "ssl", 10.0)).hint
    assert hint.startswith("imap.gmail.com is Gmail's IMAP server (for reading mail): for sending use "
                           "smtp.gmail.com port 465 (ssl) or 587 (starttls). No answer from")
    imap_on_587 = Endpoint("mail.example.test", 587, "ssl", protocol="imap")
    hint = diagnose(Failure("tls", "connect", text="x"), imap_on_587).hint
    assert hint.startswith("Port 587 is for SMTP: IMAP uses port 993 (ssl) or 143 (starttls).")
