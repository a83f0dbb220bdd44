"""`replybridge test smtp`: Status: OK, or exit 1 with the diagnosis and hint, from real exchanges."""

from __future__ import annotations

import pytest

from tests.conftest import Bridge
from tests.servers.certs import CertPair
from tests.test_outbound_smtp import PASSWORD, add_account, add_alias, closed_port


def test_ok_tries_mail_from_the_numbered_address(lite_bridge: Bridge, smtp_peer, tls_cert: CertPair,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept", tls="ssl", cert=tls_cert, auth=("ana", PASSWORD))
    add_account(lite_bridge, "localhost", peer.port, monkeypatch, security="ssl", user="ana", ca=tls_cert)
    add_alias(lite_bridge)
    out = lite_bridge.run("test", "smtp", "main").stdout
    assert "TLS: TLSv1." in out and "Authenticated as ana" in out
    assert "MAIL FROM:<jobs+1042@example.test> accepted" in out
    assert out.strip().endswith("Status: OK")
    assert peer.received == []  # RSET: nothing was sent


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
