"""Sign in with OAuth 2 and send, file and poll with tokens only: against a local provider stand-in,
an SMTP peer that takes only XOAUTH2 (basic authentication disabled, as Microsoft 365), and a real
Dovecot that checks each XOAUTH2 login by introspecting the token at the stand-in."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bridge.accounts.oauth import flows
from tests.helpers.bridge import Bridge
from tests.servers.dovecot import Dovecot
from tests.servers.oauth import SCOPE, OAuthServer
from tests.servers.smtp_peers import SmtpPeer


def _client(b: Bridge, server: OAuthServer, name: str = "corp") -> None:
    b.run("oauth", "add", name, "--provider", "generic", "--client-id", server.client_id,
          "--authorize-url", server.authorize_url, "--token-url", server.token_url, "--device-url", server.device_url,
          *[arg for scope in SCOPE.split() for arg in ("--scope", scope)])


def _sign_in(b: Bridge, server: OAuthServer, kind: str, name: str) -> None:
    """The device flow, approved by the person at the provider while the bridge polls."""
    target = flows.target(b.engine(), kind, name)
    code = flows.start_device(target)
    server.approve_device(code.user_code)
    flows.finish_device(b.engine(), target, code, sleep=lambda _s: None)


def _accounts(b: Bridge, server: OAuthServer, peer: SmtpPeer, dovecot: Dovecot) -> None:
    _client(b, server)
    out = b.run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none",
                "--username", server.user, "--oauth", "corp").stdout
    assert "oauth login smtp office --device" in out  # the next step is named
    b.run("imap", "add", "box", "--host", "localhost", "--port", str(dovecot.ssl_port), "--security", "ssl",
          "--username", server.user, "--ca-file", str(dovecot.cafile), "--oauth", "corp")
    b.run("alias", "add", "--employee", "1042", "--description", "Ana - jobs", "--display-name", "Ana Ruiz",
          "--from", "ana@example.test", "--smtp", "office", "--imap", "box", "--default")


@pytest.fixture
def peer(smtp_peer, oauth_server: OAuthServer) -> SmtpPeer:  # noqa: ANN001
    return smtp_peer("xoauth2", token_check=oauth_server.token_check)


def test_device_sign_in_then_send_test_and_file_with_tokens_only(
        bridge: Bridge, oauth_server: OAuthServer, oauth_dovecot: Dovecot, peer: SmtpPeer) -> None:
    _accounts(bridge, oauth_server, peer, oauth_dovecot)
    # before the sign-in, Test connection says what to do, and exits 1
    result = bridge.run("test", "smtp", "office", ok=False)
    assert result.exit_code == 1 and "oauth login smtp office --device" in result.output
    _sign_in(bridge, oauth_server, "smtp", "office")
    _sign_in(bridge, oauth_server, "imap", "box")
    assert "Status: OK" in bridge.run("test", "smtp", "office").stdout
    assert "Status: OK" in bridge.run("test", "imap", "box").stdout

    bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi", "--body", "Hello")
    bridge.run("worker", "--once")
    [entry] = bridge.json("log")
    assert (entry["status"], entry["sent_folder"]) == ("sent", "appended")
    assert len(peer.received) == 1 and peer.oauth_attempts[-1].accepted
    assert {a.mechanism for a in peer.oauth_attempts} == {"XOAUTH2"}
    assert oauth_dovecot.folder_messages("Sent") == [peer.received[0].data]

    # no token or secret in the database file (encrypted) nor in what the commands printed
    raw = Path(bridge.url.removeprefix("sqlite:///")).read_bytes() if bridge.url.startswith("sqlite") else b""
    for token in oauth_server.refresh_tokens() + oauth_server.access_tokens():
        assert token.encode() not in raw
        assert token not in bridge.run("oauth", "list").stdout + bridge.run("smtp", "list").stdout


def test_expired_access_token_is_refreshed_once_by_racing_workers(
        lite_bridge: Bridge, oauth_server: OAuthServer, peer: SmtpPeer, dovecot: Dovecot) -> None:
    from bridge.accounts.oauth.tokens import bearer
    from models import SmtpAccount

    _accounts(lite_bridge, oauth_server, peer, dovecot)
    _sign_in(lite_bridge, oauth_server, "smtp", "office")
    oauth_server.expire_access_tokens()
    from sqlmodel import Session, select

    with Session(lite_bridge.engine()) as session:
        account_id = session.exec(select(SmtpAccount.id)).one()
    # the stored token still looks fresh to the bridge: make it due, as time would
    from models import OAuthGrant, utcnow

    with Session(lite_bridge.engine()) as session:
        grant = session.exec(select(OAuthGrant)).one()
        grant.expires_at = utcnow()
        session.add(grant)
        session.commit()
    oauth_server.token_delay = 0.5  # a slow provider: both workers find the token due at once
    before = oauth_server.token_requests("refresh_token")
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(bearer(lite_bridge.engine(), "smtp", account_id)
                                                          .access_token.reveal())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert oauth_server.token_requests("refresh_token") - before == 1  # one refresh: the rotation is not lost
    assert len(got) == 2 and got[0] == got[1] and oauth_server.token_check(oauth_server.user, got[0])


def test_revoked_grant_waits_as_not_sent_then_goes_out_after_a_new_sign_in(
        lite_bridge: Bridge, oauth_server: OAuthServer, peer: SmtpPeer, dovecot: Dovecot) -> None:
    from sqlmodel import Session, select

    from models import OAuthGrant, utcnow

    _accounts(lite_bridge, oauth_server, peer, dovecot)
    _sign_in(lite_bridge, oauth_server, "smtp", "office")
    oauth_server.revoke(oauth_server.user)
    with Session(lite_bridge.engine()) as session:  # the access token is due: the refresh meets the revocation
        grant = session.exec(select(OAuthGrant)).one()
        grant.expires_at = utcnow()
        session.add(grant)
        session.commit()
    lite_bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi", "--body", "Hello")
    lite_bridge.run("worker", "--once")
    [entry] = lite_bridge.json("log")
    assert (entry["status"], entry["attempts"]) == ("not_sent", 0)  # waiting, its attempts not used up
    assert "sign" in entry["last_reply"] and "oauth login smtp office --device" in entry["last_reply"]
    result = lite_bridge.run("test", "smtp", "office", ok=False)
    assert result.exit_code == 1 and "invalid_grant" in result.output

    _sign_in(lite_bridge, oauth_server, "smtp", "office")  # the admin signs in again
    lite_bridge.run("worker", "--once")
    [entry] = lite_bridge.json("log")
    assert entry["status"] == "sent" and len(peer.received) == 1


def test_device_login_on_the_command_line_prints_the_url_and_code_and_waits(
        lite_bridge: Bridge, oauth_server: OAuthServer, peer: SmtpPeer, dovecot: Dovecot,
        tmp_path: Path) -> None:
    _accounts(lite_bridge, oauth_server, peer, dovecot)
    proc = subprocess.Popen([sys.executable, "-c", "from bridge.cli import main; main()", "oauth", "login", "smtp",
                             "office", "--device"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    match = re.search(r"open (\S+) and enter the code (\S+)", line)
    assert match and match.group(1) == oauth_server.verification_uri, line
    oauth_server.approve_device(match.group(2))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Signed in" in out
    assert "Status: OK" in lite_bridge.run("test", "smtp", "office").stdout


def test_app_only_sending_needs_no_person(lite_bridge: Bridge, oauth_server: OAuthServer, peer: SmtpPeer,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Client credentials (Microsoft 365 SMTP.SendAsApp): no sign-in, no refresh token, a token per need."""
    monkeypatch.setenv("CLIENT_SECRET", oauth_server.client_secret)
    lite_bridge.run("oauth", "add", "app", "--provider", "generic", "--client-id", oauth_server.client_id,
                    "--client-secret-env", "CLIENT_SECRET", "--authorize-url", oauth_server.authorize_url,
                    "--token-url", oauth_server.token_url, "--scope", oauth_server.app_scope)
    out = lite_bridge.run("smtp", "add", "robot", "--host", peer.host, "--port", str(peer.port), "--security", "none",
                          "--username", oauth_server.app_user, "--oauth", "app", "--oauth-flow", "app",
                          "--default").stdout
    assert "oauth login" not in out  # nothing for a person to do
    lite_bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi", "--body", "Hello")
    lite_bridge.run("worker", "--once")
    assert [e["status"] for e in lite_bridge.json("log")] == ["sent"]
    assert oauth_server.token_requests("client_credentials") == 1 and oauth_server.token_requests("refresh_token") == 0
    assert peer.oauth_attempts[-1].accepted and peer.oauth_attempts[-1].user == oauth_server.app_user
    assert oauth_server.client_secret not in Path(tmp_path / "rb.db").read_bytes().decode("latin-1")
    assert oauth_server.client_secret not in lite_bridge.run("oauth", "list").stdout


def test_oauthbearer_answer_is_taken_by_a_server(oauth_server: OAuthServer, peer: SmtpPeer) -> None:
    """The RFC 7628 response, for servers that offer OAUTHBEARER alone (XOAUTH2 is preferred where offered)."""
    import smtplib

    from bridge import crypto
    from bridge.net.connections import _bearer_answer, bearer_mechanism

    assert bearer_mechanism({"PLAIN", "OAUTHBEARER"}) == "OAUTHBEARER"
    assert bearer_mechanism({"XOAUTH2", "OAUTHBEARER"}) == "XOAUTH2"
    token = oauth_server.issue()["access_token"]
    with smtplib.SMTP(peer.host, peer.port, timeout=10) as conn:
        conn.ehlo()
        answer = _bearer_answer("OAUTHBEARER", oauth_server.user, crypto.Secret(token), peer.host, peer.port)
        assert conn.auth("OAUTHBEARER", answer, initial_response_ok=True)[0] == 235
    with smtplib.SMTP(peer.host, peer.port, timeout=10) as conn:
        conn.ehlo()
        bad = _bearer_answer("OAUTHBEARER", oauth_server.user, crypto.Secret("not-a-token"), peer.host, peer.port)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            conn.auth("OAUTHBEARER", bad, initial_response_ok=True)
    assert [(a.mechanism, a.accepted) for a in peer.oauth_attempts] == [("OAUTHBEARER", True), ("OAUTHBEARER", False)]


def test_poller_reads_the_catch_all_with_tokens_only(lite_bridge: Bridge, oauth_server: OAuthServer,
                                                      oauth_dovecot: Dovecot) -> None:
    from tests.helpers.inbound import deliver
    from tests.helpers.messages import candidate

    _client(lite_bridge, oauth_server)
    lite_bridge.run("imap", "add", "catchall", "--host", "localhost", "--port", str(oauth_dovecot.ssl_port),
                    "--security", "ssl", "--username", oauth_server.user, "--ca-file", str(oauth_dovecot.cafile),
                    "--oauth", "corp", "--poll-folder", "INBOX")
    _sign_in(lite_bridge, oauth_server, "imap", "catchall")
    deliver(oauth_dovecot, [candidate(1), candidate(2)])
    lite_bridge.run("worker", "--once")
    assert len(lite_bridge.json("messages", "list")) == 2
    assert oauth_server.introspections >= 1  # Dovecot checked the bearer token at the provider


def test_google_service_account_sends_for_the_mailbox(lite_bridge: Bridge, oauth_server: OAuthServer,
                                                      peer: SmtpPeer, tmp_path: Path) -> None:
    """Google Workspace app-only: a service account's signed assertion (domain-wide delegation), no person."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    email = "bridge@project.iam.gserviceaccount.example"
    oauth_server.service_accounts[email] = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps({"type": "service_account", "client_email": email, "private_key": private,
                                    "token_uri": oauth_server.token_url}))
    lite_bridge.run("oauth", "add", "gws", "--provider", "google", "--service-account-file", str(key_file))
    lite_bridge.run("smtp", "add", "gmail", "--host", peer.host, "--port", str(peer.port), "--security", "none",
                    "--username", oauth_server.user, "--oauth", "gws", "--oauth-flow", "app", "--default")
    assert "Status: OK" in lite_bridge.run("test", "smtp", "gmail").stdout
    lite_bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi", "--body", "Hello")
    lite_bridge.run("worker", "--once")
    assert [e["status"] for e in lite_bridge.json("log")] == ["sent"]
    assert peer.oauth_attempts[-1].accepted and peer.oauth_attempts[-1].user == oauth_server.user
    stored = (tmp_path / "rb.db").read_bytes()
    assert b"PRIVATE KEY" not in stored and private.splitlines()[1].encode() not in stored


def test_issue_done_when_tokens_only_then_a_revoked_grant_gives_one_clear_report(
        lite_bridge: Bridge, oauth_server: OAuthServer, oauth_dovecot: Dovecot, peer: SmtpPeer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Mail goes out from numbered addresses and is filed in Sent with tokens only; when the grant is revoked,
    the admin gets one report mail naming the fix, the mail waits, and goes out after the new sign-in."""
    from sqlmodel import Session, select

    from models import OAuthGrant, SmtpAccount, utcnow

    b = lite_bridge
    oauth_server.app_user = "jobs@example.test"  # the app-only robot acts for another mailbox than Ana's
    monkeypatch.setenv("CLIENT_SECRET", oauth_server.client_secret)
    b.run("oauth", "add", "app", "--provider", "generic", "--client-id", oauth_server.client_id,
          "--client-secret-env", "CLIENT_SECRET", "--authorize-url", oauth_server.authorize_url,
          "--token-url", oauth_server.token_url, "--scope", oauth_server.app_scope)
    b.run("smtp", "add", "robot", "--host", peer.host, "--port", str(peer.port), "--security", "none",
          "--username", "jobs@example.test", "--oauth", "app", "--oauth-flow", "app", "--default")
    _accounts(b, oauth_server, peer, oauth_dovecot)  # Ana's own account and IMAP server, delegated
    _sign_in(b, oauth_server, "smtp", "office")
    _sign_in(b, oauth_server, "imap", "box")
    for key, value in (("report_errors", "on"), ("report_to", "admin@example.test"), ("report_to_name", "Ada")):
        b.run("settings", "set", key, value)

    b.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Interview", "--body", "Hello")
    b.run("worker", "--once")
    assert [(e["status"], e["sent_folder"]) for e in b.json("log")] == [("sent", "appended")]
    assert peer.received[0].data in oauth_dovecot.folder_messages("Sent")
    assert "jobs+1042@example.test" in peer.received[0].data.decode()

    oauth_server.revoke(oauth_server.user)  # the tenant admin revokes Ana's grant
    with Session(b.engine()) as session:  # and time passes: the access token is due
        office = session.exec(select(SmtpAccount.id).where(SmtpAccount.name == "office")).one()
        grant = session.exec(select(OAuthGrant).where(OAuthGrant.account_kind == "smtp",
                                                      OAuthGrant.account_id == office)).one()
        grant.expires_at = utcnow()
        session.add(grant)
        session.commit()
    b.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Second round", "--body", "Hi")
    b.run("worker", "--once")
    b.run("worker", "--once")  # a second run within the hour: no second mail
    reports = [r for r in peer.received if "admin@example.test" in r.rcpt_tos]
    assert len(reports) == 1
    text = reports[0].data.decode()
    assert "office" in text and "oauth login smtp office --device" in text
    waiting = next(e for e in b.json("log") if e["subject"] == "Second round")
    assert (waiting["status"], waiting["attempts"]) == ("not_sent", 0)

    _sign_in(b, oauth_server, "smtp", "office")  # what the report said to do
    b.run("worker", "--once")
    assert next(e for e in b.json("log") if e["subject"] == "Second round")["status"] == "sent"
    reports = [r for r in peer.received if "admin@example.test" in r.rcpt_tos]
    assert len(reports) == 2 and "recover" in reports[1].data.decode().lower()
