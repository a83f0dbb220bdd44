"""`replybridge test smtp`: Status: OK, or exit 1 with the diagnosis and hint, from real exchanges."""

from __future__ import annotations

import pytest

from bridge.net.connections import outgoing_address
from tests.helpers.bridge import Bridge
from tests.helpers.ports import closed_port
from tests.helpers.setup_steps import PASSWORD, add_account, add_alias
from tests.servers.certs import CertPair


def test_ok_tries_mail_from_the_numbered_address(lite_bridge: Bridge, smtp_peer, tls_cert: CertPair,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept", tls="ssl", cert=tls_cert, auth=("ana", PASSWORD))
    add_account(lite_bridge, "localhost", peer.port, monkeypatch, security="ssl", user="ana", ca=tls_cert)
    add_alias(lite_bridge)
    out = lite_bridge.run("test", "smtp", "main").stdout
    assert "TLS: TLSv1." in out and "Authenticated as ana" in out
    assert "MAIL FROM:<jobs+1042@example.test> accepted" in out
    assert "RCPT TO not tried: no outside address known yet" in out
    assert "Outgoing address: 127.0.0.1" in out  # for the provider's allow list
    assert out.strip().endswith("Status: OK")
    assert peer.received == []  # RSET: nothing was sent


def test_rcpt_to_an_outside_address_catches_a_server_that_will_not_relay(lite_bridge: Bridge, smtp_peer,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("relay_denied")  # 550 5.7.1 Unable to relay, at RCPT
    add_account(lite_bridge, peer.host, peer.port, monkeypatch)
    add_alias(lite_bridge)
    lite_bridge.run("settings", "set", "test_recipient", "someone@outside.example.org")
    result = lite_bridge.run("test", "smtp", "main", ok=False)
    assert result.exit_code == 1 and "Status: FAILED" in result.stdout
    assert "Diagnosis: 550 5.7.1 Unable to relay (at rcpt)" in result.stdout and "relay" in result.stdout
    ok = smtp_peer("accept")
    lite_bridge.run("smtp", "add", "good", "--host", ok.host, "--port", str(ok.port), "--security", "none")
    lite_bridge.run("alias", "add", "--employee", "1042", "--description", "Good", "--display-name", "Ana",
                    "--from", "ana@example.test", "--smtp", "good")
    out = lite_bridge.run("test", "smtp", "good", "--to", "other@outside.example.org").stdout
    assert "RCPT TO:<other@outside.example.org> accepted (250)" in out and out.strip().endswith("Status: OK")
    assert ok.received == []


def test_send_to_sends_a_marked_test_message_and_reports_data_s_answer(lite_bridge: Bridge, smtp_peer,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    denied = smtp_peer("send_as_denied_data")  # Microsoft 365's SendAsDenied, only at the end of DATA
    add_account(lite_bridge, denied.host, denied.port, monkeypatch)
    add_alias(lite_bridge)
    assert lite_bridge.run("test", "smtp", "main", "--to", "c@outside.example.org").exit_code == 0  # RSET hides it
    result = lite_bridge.run("test", "smtp", "main", "--send-to", "c@outside.example.org", ok=False)
    assert result.exit_code == 1 and "5.2.252 SendAsDenied" in result.stdout and "(at data)" in result.stdout
    assert "sender mode `reply-to`" in result.stdout
    accepting = smtp_peer("accept")
    lite_bridge.run("smtp", "add", "good", "--host", accepting.host, "--port", str(accepting.port), "--security",
                    "none", "--default")
    out = lite_bridge.run("test", "smtp", "good", "--employee", "1042", "--send-to", "c@outside.example.org").stdout
    assert "Test message sent to c@outside.example.org: 250" in out and out.strip().endswith("Status: OK")
    [got] = accepting.received
    assert got.rcpt_tos == ["c@outside.example.org"] and b"Subject: Test message from replybridge" in got.data
    assert b"Auto-Submitted: auto-generated" in got.data
    bad = lite_bridge.run("test", "smtp", "good", "--send-to", "not an address", ok=False)
    assert bad.exit_code != 0 and "--send-to" in bad.output


@pytest.mark.parametrize("behaviour, account, words", [
    ("send_as_denied", {}, "Send As"),
    ("auth_535", {"user": "ana"}, "app password"),
    ("accept", {"security": "starttls"}, "does not offer STARTTLS"),
])
def test_failures_exit_1_with_diagnosis_and_hint(lite_bridge: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch,
                                                 behaviour: str, account: dict, words: str) -> None:
    peer = smtp_peer(behaviour)
    add_account(lite_bridge, peer.host, peer.port, monkeypatch, **account)
    add_alias(lite_bridge)
    result = lite_bridge.run("test", "smtp", "main", ok=False)
    assert result.exit_code == 1
    assert "Status: FAILED" in result.stdout and "Status: OK" not in result.stdout
    assert "Diagnosis:" in result.stdout and words in result.stdout
    assert PASSWORD not in result.output


def test_refused_and_unknown_account(lite_bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    add_account(lite_bridge, "127.0.0.1", closed_port(), monkeypatch, timeout=2)
    result = lite_bridge.run("test", "smtp", "main", ok=False)
    assert result.exit_code == 1 and "connection refused" in result.stdout
    missing = lite_bridge.run("test", "smtp", "nope", ok=False)
    assert missing.exit_code == 1 and "no SMTP account named 'nope'" in missing.stderr


def test_basic_auth_disabled_points_to_sign_in_with_microsoft(lite_bridge: Bridge, smtp_peer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("auth_535_basic_disabled")
    add_account(lite_bridge, peer.host, peer.port, monkeypatch, user="ana")
    result = lite_bridge.run("test", "smtp", "main", ok=False)
    assert result.exit_code == 1
    assert "Diagnosis: 535 5.7.139 Authentication unsuccessful, basic authentication is disabled." in result.stdout
    assert "disabled for this Microsoft 365 tenant" in result.stdout
    assert "replybridge oauth add NAME --provider microsoft" in result.stdout and "--oauth NAME" in result.stdout
    assert PASSWORD not in result.output


@pytest.mark.parametrize("where", ["refused", "silent"])
def test_unanswered_connection_names_this_servers_address(lite_bridge: Bridge, smtp_peer,
                                                          monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    port = smtp_peer("silent").port if where == "silent" else closed_port()
    add_account(lite_bridge, "127.0.0.1", port, monkeypatch, timeout=1)
    result = lite_bridge.run("test", "smtp", "main", ok=False)
    assert result.exit_code == 1
    assert "If the provider keeps an allow list, add this server's address 127.0.0.1." in result.stdout


def test_outgoing_address_sends_nothing_and_falls_back() -> None:
    assert outgoing_address("127.0.0.1", closed_port()) == "127.0.0.1"
    assert outgoing_address("no-such-host.invalid", 25) is None
