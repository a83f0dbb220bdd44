"""The OAuth 2 stand-in and the servers that check its tokens: issue-6 tests rely on them behaving like
Microsoft's and Google's, so each grant, the rotation, revocation and both XOAUTH2 servers are pinned here."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import smtplib
import ssl
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.servers import oauth
from tests.servers.certs import CertPair
from tests.servers.dovecot import Dovecot
from tests.servers.oauth import DEVICE_GRANT, OAuthServer
from tests.servers.smtp_peers import BASIC_AUTH_DISABLED, OAUTH_REFUSED, SmtpPeer, start_peer

# The fixtures, made visible to this module (smtp_peer, tls_cert and page come from conftest).
oauth_server = oauth.oauth_server
oauth_dovecot = oauth.oauth_dovecot

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never fetched: the client reads the code off the redirect
SENDER = "ana@example.test"
MESSAGE = b"From: ana@example.test\r\nTo: candidate@example.test\r\nSubject: Interview\r\n\r\nHello\r\n"


def pkce() -> tuple[str, str]:
    """A (verifier, S256 challenge) pair as RFC 7636 section 4 builds it."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(server: OAuthServer, challenge: str, state: str = "st-1", **extra: str) -> httpx.Response:
    params = {"response_type": "code", "client_id": server.client_id, "redirect_uri": REDIRECT_URI,
              "scope": "offline_access SMTP.Send", "state": state, "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}
    return httpx.get(server.authorize_url, params=params, follow_redirects=False)


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def token(server: OAuthServer, **form: str) -> httpx.Response:
    return httpx.post(server.token_url, data={"client_id": server.client_id, **form})


def code_grant(server: OAuthServer, code: str, verifier: str, redirect_uri: str = REDIRECT_URI) -> httpx.Response:
    return token(server, grant_type="authorization_code", code=code, code_verifier=verifier,
                 redirect_uri=redirect_uri)


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def introspect(server: OAuthServer, access_token: str) -> dict[str, Any]:
    response = httpx.post(server.introspect_url, data={"token": access_token})
    assert response.status_code == 200
    return response.json()


# --- authorization code with PKCE --------------------------------------------------------------------------

def test_authorization_code_with_pkce(oauth_server: OAuthServer) -> None:
    verifier, challenge = pkce()
    params = redirect_params(authorize(oauth_server, challenge, state="xyz"))
    assert params["state"] == "xyz"
    response = code_grant(oauth_server, params["code"], verifier)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "offline_access SMTP.Send"
    assert body["access_token"] != body["refresh_token"]
    assert introspect(oauth_server, body["access_token"])["username"] == "ana@example.test"
    # A code works once.
    assert error_of(code_grant(oauth_server, params["code"], verifier)) == (400, "invalid_grant")
    assert oauth_server.token_requests("authorization_code") == 2


def test_authorization_code_checks_verifier_and_redirect_uri(oauth_server: OAuthServer) -> None:
    verifier, challenge = pkce()
    code = redirect_params(authorize(oauth_server, challenge))["code"]
    assert error_of(code_grant(oauth_server, code, verifier + "x")) == (400, "invalid_grant")
    code = redirect_params(authorize(oauth_server, challenge))["code"]
    assert error_of(code_grant(oauth_server, code, verifier, "http://127.0.0.1:9/other")) == (400, "invalid_grant")
    assert oauth_server.access_tokens() == []


def test_authorize_requires_s256_and_a_known_client(oauth_server: OAuthServer) -> None:
    assert redirect_params(authorize(oauth_server, ""))["error"] == "invalid_request"
    _, challenge = pkce()
    plain = redirect_params(authorize(oauth_server, challenge, code_challenge_method="plain"))
    assert plain == {"error": "invalid_request", "state": "st-1"}
    assert redirect_params(authorize(oauth_server, challenge, response_type="token"))["error"] == \
        "unsupported_response_type"
    unknown = authorize(oauth_server, challenge, client_id="someone-else")
    assert unknown.status_code == 400  # never redirected to an unverified client's URI
    assert "location" not in unknown.headers


def test_authorize_page_approve_and_deny(oauth_server: OAuthServer) -> None:
    oauth_server.auto_approve = False
    verifier, challenge = pkce()
    page = authorize(oauth_server, challenge)
    assert page.status_code == 200
    assert ">Approve</button>" in page.text
    request_id = page.text.split('name="request_id" value="')[1].split('"')[0]
    approved = httpx.post(oauth_server.authorize_url, follow_redirects=False,
                          data={"request_id": request_id, "username": "bo@example.test", "decision": "approve"})
    body = code_grant(oauth_server, redirect_params(approved)["code"], verifier).json()
    assert introspect(oauth_server, body["access_token"])["username"] == "bo@example.test"
    again = httpx.post(oauth_server.authorize_url, data={"request_id": request_id, "decision": "approve"})
    assert again.status_code == 400  # decided already

    page = authorize(oauth_server, challenge, state="s2")
    request_id = page.text.split('name="request_id" value="')[1].split('"')[0]
    denied = httpx.post(oauth_server.authorize_url, follow_redirects=False,
                        data={"request_id": request_id, "decision": "deny"})
    assert redirect_params(denied) == {"error": "access_denied", "state": "s2"}


def test_authorize_page_in_a_browser(oauth_server: OAuthServer, page: Any) -> None:
    oauth_server.auto_approve = False
    _, challenge = pkce()
    callback = f"{oauth_server.base_url}/callback"  # a 404 page on the stand-in, but the URL carries the code
    page.goto(str(httpx.URL(oauth_server.authorize_url, params={
        "response_type": "code", "client_id": oauth_server.client_id, "redirect_uri": callback,
        "state": "b1", "code_challenge": challenge, "code_challenge_method": "S256"})))
    assert page.get_by_label("Account").input_value() == "ana@example.test"
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{callback}?*")
    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == ["b1"]
    assert query["code"][0]


# --- refresh tokens -------------------------------------------------------------------------------------------

def test_refresh_rotates_and_the_old_token_is_dead(oauth_server: OAuthServer) -> None:
    first = oauth_server.issue()
    response = token(oauth_server, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    reuse = token(oauth_server, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert error_of(reuse) == (400, "invalid_grant")
    third = token(oauth_server, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert third.status_code == 200
    assert oauth_server.refresh_tokens(usable=True) == [third.json()["refresh_token"]]
    assert oauth_server.token_requests("refresh_token") == 3
    # Rotation ends only the refresh token: access tokens live out their lifetime.
    assert introspect(oauth_server, first["access_token"])["active"] is True


def test_two_racing_refreshes_one_wins(oauth_server: OAuthServer) -> None:
    """What a bridge without a refresh lock would see: the loser's grant is already spent."""
    oauth_server.token_delay = 0.2
    refresh_token = oauth_server.issue()["refresh_token"]
    results: list[int] = []

    def refresh() -> None:
        results.append(token(oauth_server, grant_type="refresh_token", refresh_token=refresh_token).status_code)

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 400]
    assert oauth_server.token_requests("refresh_token") == 2


def test_injected_token_failures_change_nothing(oauth_server: OAuthServer) -> None:
    refresh_token = oauth_server.issue()["refresh_token"]
    oauth_server.fail_next_token_requests(1)
    failed = token(oauth_server, grant_type="refresh_token", refresh_token=refresh_token)
    assert error_of(failed) == (503, "temporarily_unavailable")
    assert token(oauth_server, grant_type="refresh_token", refresh_token=refresh_token).status_code == 200


# --- device flow ------------------------------------------------------------------------------------------------

def start_device(server: OAuthServer) -> dict[str, Any]:
    response = httpx.post(server.device_url, data={"client_id": server.client_id, "scope": "offline_access"})
    assert response.status_code == 200
    return response.json()


def poll(server: OAuthServer, device_code: str) -> httpx.Response:
    return token(server, grant_type=DEVICE_GRANT, device_code=device_code)


def test_device_flow_pending_slow_down_then_approved(oauth_server: OAuthServer) -> None:
    oauth_server.device_interval = 0.3
    oauth_server.slow_down_step = 0.3
    device = start_device(oauth_server)
    assert device["verification_uri"] == f"{oauth_server.base_url}/device/verify"
    assert device["interval"] == 1 and device["expires_in"] == 600
    assert len(device["user_code"]) == 9 and device["user_code"][4] == "-"
    assert error_of(poll(oauth_server, device["device_code"])) == (400, "authorization_pending")
    assert error_of(poll(oauth_server, device["device_code"])) == (400, "slow_down")  # too soon
    time.sleep(0.7)  # the interval is now 0.6 s
    assert error_of(poll(oauth_server, device["device_code"])) == (400, "authorization_pending")
    oauth_server.approve_device(device["user_code"].lower().replace("-", ""))  # typed loosely by a person
    time.sleep(0.7)
    response = poll(oauth_server, device["device_code"])
    assert response.status_code == 200
    assert introspect(oauth_server, response.json()["access_token"])["username"] == "ana@example.test"
    assert "refresh_token" in response.json()
    time.sleep(0.7)
    assert error_of(poll(oauth_server, device["device_code"])) == (400, "invalid_grant")  # used up
    assert oauth_server.token_requests(DEVICE_GRANT) == 5


def test_device_flow_denied_and_expired(oauth_server: OAuthServer) -> None:
    denied = start_device(oauth_server)
    oauth_server.deny_device(denied["user_code"])
    assert error_of(poll(oauth_server, denied["device_code"])) == (400, "access_denied")
    oauth_server.device_expires_in = 0.1
    expired = start_device(oauth_server)
    time.sleep(0.2)
    assert error_of(poll(oauth_server, expired["device_code"])) == (400, "expired_token")
    with pytest.raises(KeyError):
        oauth_server.approve_device("BCDF-GHJK")


def test_device_verify_page_approves(oauth_server: OAuthServer) -> None:
    device = start_device(oauth_server)
    page = httpx.get(device["verification_uri_complete"])
    assert f'value="{device["user_code"]}"' in page.text
    done = httpx.post(device["verification_uri"], data={"user_code": device["user_code"], "decision": "approve"})
    assert "Approved" in done.text
    assert poll(oauth_server, device["device_code"]).status_code == 200


# --- client credentials, introspection, lifetime, revocation ----------------------------------------------------

def test_client_credentials_checks_the_secret(oauth_server: OAuthServer) -> None:
    posted = token(oauth_server, grant_type="client_credentials", client_secret=oauth_server.client_secret)
    assert posted.status_code == 200
    assert "refresh_token" not in posted.json()
    assert posted.json()["scope"] == "https://outlook.office365.com/.default"
    basic = httpx.post(oauth_server.token_url, data={"grant_type": "client_credentials"},
                       auth=(oauth_server.client_id, oauth_server.client_secret))
    assert basic.status_code == 200
    info = introspect(oauth_server, basic.json()["access_token"])
    assert (info["client_id"], info["username"]) == (oauth_server.client_id, oauth_server.app_user)
    wrong = token(oauth_server, grant_type="client_credentials", client_secret="nope")
    assert error_of(wrong) == (401, "invalid_client")
    assert "www-authenticate" in wrong.headers
    assert error_of(token(oauth_server, grant_type="client_credentials")) == (401, "invalid_client")
    assert error_of(token(oauth_server, grant_type="password")) == (400, "unsupported_grant_type")
    assert oauth_server.token_requests("client_credentials") == 4


def test_introspection_answers(oauth_server: OAuthServer) -> None:
    issued = oauth_server.issue()
    info = introspect(oauth_server, issued["access_token"])
    assert info["active"] is True
    assert info["username"] == info["sub"] == "ana@example.test"
    assert info["client_id"] == oauth_server.client_id
    assert info["scope"] == oauth_server.scope
    assert info["exp"] - time.time() == pytest.approx(3600, abs=5)
    assert introspect(oauth_server, issued["refresh_token"]) == {"active": False}  # not a bearer token
    assert introspect(oauth_server, "at-unknown") == {"active": False}
    bad_client = httpx.post(oauth_server.introspect_url, data={"token": issued["access_token"]}, auth=("x", "y"))
    assert bad_client.status_code == 401
    oauth_server.expire_access_tokens()
    assert introspect(oauth_server, issued["access_token"]) == {"active": False}
    assert oauth_server.introspections == 4


def test_short_lived_access_tokens_expire(oauth_server: OAuthServer) -> None:
    oauth_server.access_token_lifetime = 1
    issued = oauth_server.issue()
    assert issued["expires_in"] == 1
    assert introspect(oauth_server, issued["access_token"])["active"] is True
    time.sleep(1.1)
    assert introspect(oauth_server, issued["access_token"]) == {"active": False}
    assert oauth_server.access_tokens(usable=True) == []


def test_revoking_a_user_ends_refresh_and_access(oauth_server: OAuthServer) -> None:
    issued = oauth_server.issue()
    other = oauth_server.issue(user="bo@example.test")
    assert oauth_server.revoke() == 2
    assert introspect(oauth_server, issued["access_token"]) == {"active": False}
    refused = token(oauth_server, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert error_of(refused) == (400, "invalid_grant")
    assert introspect(oauth_server, other["access_token"])["active"] is True


def test_revocation_endpoint_ends_the_whole_grant(oauth_server: OAuthServer) -> None:
    issued = oauth_server.issue()
    response = httpx.post(oauth_server.revoke_url, data={"client_id": oauth_server.client_id,
                                                         "token": issued["refresh_token"]})
    assert response.status_code == 200
    assert introspect(oauth_server, issued["access_token"]) == {"active": False}
    assert error_of(token(oauth_server, grant_type="refresh_token", refresh_token=issued["refresh_token"])) == \
        (400, "invalid_grant")
    unknown = httpx.post(oauth_server.revoke_url, data={"client_id": oauth_server.client_id, "token": "zzz"})
    assert unknown.status_code == 200  # RFC 7009: an unknown token is not an error


# --- Dovecot checks XOAUTH2 / OAUTHBEARER by introspection --------------------------------------------------------

def imap(server: Dovecot) -> IMAPClient:
    return IMAPClient(server.host, server.port, ssl=False, timeout=10)


def test_dovecot_accepts_a_valid_token(oauth_server: OAuthServer, oauth_dovecot: Dovecot) -> None:
    access_token = oauth_server.issue()["access_token"]
    client = imap(oauth_dovecot)
    assert {b"AUTH=XOAUTH2", b"AUTH=OAUTHBEARER"} <= set(client.capabilities())
    client.oauth2_login(oauth_dovecot.user, access_token)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()
    client = imap(oauth_dovecot)
    client.oauthbearer_login(oauth_dovecot.user, access_token)
    client.logout()
    assert oauth_server.introspections == 2
    client = imap(oauth_dovecot)
    client.login(oauth_dovecot.user, oauth_dovecot.password)  # passwords still work
    client.logout()
    assert oauth_server.introspections == 2  # and never reach the introspection URL


def test_dovecot_refuses_expired_revoked_and_foreign_tokens(oauth_server: OAuthServer,
                                                            oauth_dovecot: Dovecot) -> None:
    expired = oauth_server.issue()["access_token"]
    oauth_server.expire_access_tokens()
    revoked = oauth_server.issue()["access_token"]
    oauth_server.revoke()
    foreign = oauth_server.issue(user="bo@example.test")["access_token"]
    for bad in (expired, revoked, foreign):
        client = imap(oauth_dovecot)
        with pytest.raises(LoginError):
            client.oauth2_login(oauth_dovecot.user, bad)
        client.shutdown()
    client = imap(oauth_dovecot)
    with pytest.raises(LoginError):
        client.login(oauth_dovecot.user, oauth_server.issue()["access_token"])  # a token is no password
    client.shutdown()
    assert oauth_server.introspections == 3


# --- the SMTP peer that takes XOAUTH2 like Microsoft 365 ----------------------------------------------------------

def xoauth2(user: str, access_token: str) -> Any:
    """smtplib authobject: the initial response, then an empty answer to an error challenge."""
    return lambda challenge=None: f"user={user}\x01auth=Bearer {access_token}\x01\x01" if challenge is None else ""


def test_smtp_peer_takes_xoauth2(oauth_server: OAuthServer, smtp_peer: Any) -> None:
    peer: SmtpPeer = smtp_peer("xoauth2", token_check=oauth_server.token_check)
    access_token = oauth_server.issue()["access_token"]
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        client.ehlo()
        assert set(client.esmtp_features["auth"].split()) == {"LOGIN", "PLAIN", "XOAUTH2", "OAUTHBEARER"}
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail(SENDER, ["candidate@example.test"], MESSAGE)  # AUTH first
        assert client.auth("XOAUTH2", xoauth2(SENDER, access_token))[0] == 235
        assert client.sendmail(SENDER, ["candidate@example.test"], MESSAGE) == {}
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        client.ehlo()
        bearer = f"n,a={SENDER},\x01host={peer.host}\x01port={peer.port}\x01auth=Bearer {access_token}\x01\x01"
        assert client.auth("OAUTHBEARER", lambda challenge=None: bearer)[0] == 235
    assert [r.data for r in peer.received] == [MESSAGE]
    assert [(a.mechanism, a.user, a.accepted) for a in peer.oauth_attempts] == [
        ("XOAUTH2", SENDER, True), ("OAUTHBEARER", SENDER, True)]


def test_smtp_peer_refuses_a_bad_token_like_microsoft(oauth_server: OAuthServer, smtp_peer: Any) -> None:
    peer: SmtpPeer = smtp_peer("xoauth2", token_check=oauth_server.token_check)
    expired = oauth_server.issue()["access_token"]
    oauth_server.expire_access_tokens()
    challenges: list[bytes] = []

    def authobject(challenge: bytes | None = None) -> str:
        if challenge is None:
            return f"user={SENDER}\x01auth=Bearer {expired}\x01\x01"
        challenges.append(challenge)
        return ""

    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.auth("XOAUTH2", authobject)
    assert f"{info.value.smtp_code} {info.value.smtp_error.decode()}" == OAUTH_REFUSED
    assert json.loads(challenges[0])["status"] == "401"
    assert peer.oauth_attempts[0].accepted is False


def test_smtp_peer_refuses_password_auth_with_5_7_139(oauth_server: OAuthServer, smtp_peer: Any,
                                                      tls_cert: CertPair) -> None:
    peer: SmtpPeer = smtp_peer("xoauth2", tls="starttls", cert=tls_cert, token_check=oauth_server.token_check)
    with smtplib.SMTP(peer.host, peer.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("auth")  # only after STARTTLS, as for the other behaviours
        client.starttls(context=ssl.create_default_context(cafile=str(tls_cert.cafile)))
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login(SENDER, "the-old-password")
    assert f"{info.value.smtp_code} {info.value.smtp_error.decode()}" == BASIC_AUTH_DISABLED
    assert BASIC_AUTH_DISABLED == "535 5.7.139 Authentication unsuccessful, basic authentication is disabled."
    assert peer.oauth_attempts == []


@pytest.mark.parametrize("kwargs", [
    {},  # xoauth2 needs a token_check
    {"token_check": lambda user, token: True, "auth": ("u", "p")},
    {"token_check": lambda user, token: True, "fail_times": 1},
])
def test_xoauth2_peer_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        start_peer("xoauth2", **kwargs)


def test_token_check_only_for_xoauth2() -> None:
    with pytest.raises(ValueError):
        start_peer("accept", token_check=lambda user, token: True)
