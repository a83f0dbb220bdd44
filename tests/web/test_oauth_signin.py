"""Sign in with OAuth from the admin pages, in Chromium and over HTTP against a real `serve`: the OAuth clients
page, SMTP/IMAP accounts choosing an OAuth client instead of a password, the sign-in button (authorization
code with PKCE and `state`) against the provider stand-in, and "sign in again" after a revoked grant.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import Session, select

from models import OAuthGrant, SmtpAccount, utcnow
from tests.servers.oauth import SCOPE, OAuthServer
from tests.servers.smtp_peers import SmtpPeer
from tests.servers.web import Served, press_test_connection, screenshot, sign_in, signed_in_client


@pytest.fixture
def peer(smtp_peer, oauth_server: OAuthServer) -> SmtpPeer:  # noqa: ANN001
    """An SMTP server that takes only XOAUTH2 tokens the stand-in issued (basic authentication off)."""
    return smtp_peer("xoauth2", token_check=oauth_server.token_check)


def _cli_setup(web: Served, server: OAuthServer, peer: SmtpPeer) -> int:
    """The OAuth client and an SMTP account using it (as the CLI makes them); the account's id."""
    web.bridge.run("oauth", "add", "corp", "--provider", "generic", "--client-id", server.client_id,
                   "--authorize-url", server.authorize_url, "--token-url", server.token_url,
                   *[arg for scope in SCOPE.split() for arg in ("--scope", scope)])
    web.bridge.run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none",
                   "--username", server.user, "--oauth", "corp")
    with Session(web.bridge.engine()) as session:
        return session.exec(select(SmtpAccount.id).where(SmtpAccount.name == "office")).one()


def _grant(web: Served) -> OAuthGrant | None:
    with Session(web.bridge.engine()) as session:
        return session.exec(select(OAuthGrant)).first()


def _make_token_due(web: Served) -> None:
    """The stored access token looks fresh to the bridge: make it due, as time would."""
    with Session(web.bridge.engine()) as session:
        grant = session.exec(select(OAuthGrant)).one()
        grant.expires_at = utcnow()
        session.add(grant)
        session.commit()


def _sign_in_at_provider(page, web: Served, button: str = "Sign in") -> None:  # noqa: ANN001
    """Press the account's sign-in button, approve at the stand-in, land back on the account's page."""
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Sign in to the test provider", page.url
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(re.compile(re.escape(web.base_url) + r"/admin/smtp/\d+$"))


def test_admin_signs_an_smtp_account_in_with_the_button_and_again_after_a_revocation(
        web: Served, page, oauth_server: OAuthServer, peer: SmtpPeer) -> None:  # noqa: ANN001
    oauth_server.auto_approve = False  # the stand-in shows its Approve page, as a provider would
    blocked: list[str] = []
    page.on("console", lambda msg: blocked.append(msg.text) if "Content Security Policy" in msg.text else None)
    sign_in(page, web, "admin@example.test")

    # the OAuth client, as `oauth add` takes it; its secret is write-only
    page.get_by_role("navigation").get_by_role("link", name="OAuth clients").click()
    assert page.locator("h1").inner_text() == "OAuth clients"
    page.get_by_label("Name", exact=True).fill("corp")
    page.get_by_label("Provider", exact=True).select_option("generic")
    page.get_by_label("Client ID", exact=True).fill(oauth_server.client_id)
    page.get_by_label("Client secret", exact=True).fill(oauth_server.client_secret)
    page.get_by_label("Scopes", exact=True).fill(SCOPE)
    page.get_by_label("Authorize URL", exact=True).fill(oauth_server.authorize_url)
    page.get_by_label("Token URL", exact=True).fill(oauth_server.token_url)
    page.get_by_label("Device URL", exact=True).fill(oauth_server.device_url)
    page.get_by_role("button", name="Add OAuth client").click()
    page.wait_for_load_state()
    assert "OAuth client 'corp' added" in page.locator(".flash").inner_text()
    row = page.locator("tr", has_text="corp")
    assert "generic" in row.inner_text() and "set" in row.inner_text()
    assert oauth_server.client_secret not in page.content()

    # an SMTP account that signs in with it (delegated): no password
    page.get_by_role("navigation").get_by_role("link", name="SMTP accounts").click()
    page.get_by_label("Name", exact=True).fill("office")
    page.get_by_label("Host", exact=True).fill(peer.host)
    page.get_by_label("Port", exact=True).fill(str(peer.port))
    page.get_by_label("Security", exact=True).select_option("none")
    page.get_by_label("Username", exact=True).fill(oauth_server.user)
    page.get_by_label("Sign-in", exact=True).select_option("oauth")
    page.get_by_label("OAuth client", exact=True).select_option("corp")
    page.get_by_label("OAuth flow", exact=True).select_option("delegated")
    page.get_by_role("button", name="Add SMTP account").click()
    page.wait_for_url(re.compile(r"/admin/smtp/\d+$"))
    assert page.locator(".sign-in-state").inner_text() == "Not signed in yet"
    with Session(web.bridge.engine()) as session:
        account = session.exec(select(SmtpAccount)).one()
        assert account.secret is None and account.oauth_flow == "delegated"

    # a message for the account waits for the sign-in, its Mail Log reason naming the button
    web.bridge.run("alias", "add", "--employee", "1042", "--description", "Ana - jobs", "--display-name", "Ana Ruiz",
                   "--from", "ana@example.test", "--smtp", "office", "--default")
    web.bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi", "--body", "Hello")
    waiting = web.wait_for(lambda: [e for e in web.bridge.json("log") if e["status"] == "not_sent"],
                           what="the message to wait for the sign-in")
    assert '"Sign in" button' in waiting[0]["last_reply"] and waiting[0]["attempts"] == 0

    # the button: a form post, then the provider's page (another origin: the page's CSP allows it there only)
    edit_url = page.url
    with httpx.Client(cookies={c["name"]: c["value"] for c in page.context.cookies()}) as http:
        csp = http.get(edit_url).headers["content-security-policy"]
        assert f"form-action 'self' {oauth_server.base_url};" in csp
        assert "form-action 'self';" in http.get(f"{web.base_url}/admin/smtp").headers["content-security-policy"]
    _sign_in_at_provider(page, web)
    assert page.url == edit_url
    assert "Signed in" in page.locator(".flash").inner_text()
    assert page.locator(".sign-in-state").inner_text() == f"Signed in as {oauth_server.user}"
    assert blocked == []

    assert "Status: OK" in press_test_connection(page)
    web.wait_for(lambda: len(peer.received) == 1, what="the waiting message to go out after the sign-in")
    # the peer has it once its 250 is sent; the Mail Log says so a moment later, when the worker has read it
    web.wait_for(lambda: [e["status"] for e in web.bridge.json("log")] == ["sent"], what="the Mail Log to say sent")

    # the provider revokes the grant; when the token is due, the refresh meets invalid_grant
    oauth_server.revoke(oauth_server.user)
    _make_token_due(web)
    report = press_test_connection(page)
    assert "Status: FAILED" in report, report
    diagnosis = " ".join(report)
    assert "invalid_grant" in diagnosis and '"Sign in" button' in diagnosis
    assert page.locator(".sign-in-state").inner_text().startswith("Sign in again: invalid_grant")
    screenshot(page, "admin-oauth")
    page.get_by_role("navigation").get_by_role("link", name="SMTP accounts").click()
    assert "Sign in again" in page.locator("tr", has_text="office").inner_text()

    page.goto(edit_url)
    _sign_in_at_provider(page, web)
    assert page.locator(".sign-in-state").inner_text() == f"Signed in as {oauth_server.user}"
    assert "Status: OK" in press_test_connection(page)
    assert blocked == [] and page.errors == []


def test_the_callback_takes_only_the_state_this_browser_started_once(
        web: Served, oauth_server: OAuthServer, peer: SmtpPeer) -> None:
    account_id = _cli_setup(web, oauth_server, peer)  # the stand-in approves at once (auto_approve)
    with signed_in_client(web, "admin@example.test") as (http, token):
        # a callback with a state this browser never started: refused, nothing changed
        r = http.get("/oauth/callback", params={"code": "stolen", "state": "forged"})
        assert r.status_code == 400 and "expired or was forged" in r.text and "nothing changed" in r.text

        r = http.post(f"/oauth/start/smtp/{account_id}", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"].startswith(oauth_server.authorize_url)
        query = parse_qs(urlsplit(r.headers["location"]).query)
        assert query["code_challenge_method"] == ["S256"] and query["state"]
        assert query["redirect_uri"] == [f"{web.base_url}/oauth/callback"]  # the bridge's own URL
        back = httpx.get(r.headers["location"]).headers["location"]  # the provider sends the browser back
        assert back.startswith(f"{web.base_url}/oauth/callback?")
        callback = back.removeprefix(web.base_url)

        forged = re.sub(r"state=[^&]+", "state=forged", callback)
        assert http.get(forged).status_code == 400
        assert _grant(web) is None or _grant(web).state != "ok"

        r = http.get(callback)
        assert r.status_code == 303 and r.headers["location"] == f"/admin/smtp/{account_id}"
        assert _grant(web).state == "ok" and _grant(web).username == oauth_server.user
        assert "Signed in as" in http.get(f"/admin/smtp/{account_id}").text
        assert http.get(callback).status_code == 400  # used once

        # declined at the provider: a clear message, nothing changed
        r = http.post(f"/oauth/start/smtp/{account_id}", data={"csrf_token": token})
        state = parse_qs(urlsplit(r.headers["location"]).query)["state"][0]
        r = http.get("/oauth/callback", params={"error": "access_denied", "state": state})
        assert r.status_code == 303
        assert "declined at the provider" in http.get(r.headers["location"]).text
        assert _grant(web).state == "ok"


def test_recruiters_may_not_see_oauth_clients_nor_start_a_sign_in(
        web: Served, oauth_server: OAuthServer, peer: SmtpPeer) -> None:
    account_id = _cli_setup(web, oauth_server, peer)
    with signed_in_client(web, "ana@example.test") as (http, token):
        assert http.get("/admin/oauth").status_code == 403
        assert http.post("/admin/oauth", data={"csrf_token": token, "name": "x"}).status_code == 403
        r = http.post(f"/oauth/start/smtp/{account_id}", data={"csrf_token": token})
        assert r.status_code == 403 and "location" not in r.headers
        assert http.get("/oauth/callback", params={"code": "c", "state": "s"}).status_code == 403
    with web.client() as http:  # not signed in: to the sign-in page
        r = http.get("/oauth/callback", params={"code": "c", "state": "s"})
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_client_secret_never_appears_and_bad_input_changes_nothing(
        web: Served, oauth_server: OAuthServer, peer: SmtpPeer) -> None:
    secret = "s3cret-value-never-shown-42"
    with signed_in_client(web, "admin@example.test") as (http, token):
        r = http.post("/admin/oauth", data={"csrf_token": token, "name": "bad", "provider": "generic",
                                            "client_id": "app", "client_secret": secret,
                                            "authorize_url": "not a url", "token_url": oauth_server.token_url})
        assert r.status_code == 422 and secret not in r.text
        assert re.search(r'id="f-authorize_url-error">Authorize URL .* is not an http\(s\) URL', r.text)
        r = http.post("/admin/oauth", data={"csrf_token": token, "name": "gen", "provider": "generic",
                                            "client_id": "app", "client_secret": secret})
        assert r.status_code == 422 and 'id="f-authorize_url-error"' in r.text and secret not in r.text
        assert web.bridge.json("oauth", "list") == []

        r = http.post("/admin/oauth", data={"csrf_token": token, "name": "ms", "provider": "microsoft",
                                            "client_id": "app-id", "client_secret": secret, "tenant": "contoso.com"})
        assert r.status_code == 303
        [client] = web.bridge.json("oauth", "list")
        assert client["client_secret"] == "set"
        assert client["authorize_url"] == "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/authorize"

        smtp = {"csrf_token": token, "name": "m365", "host": "smtp.office365.com", "port": "587",
                "security": "starttls", "username": "jobs@contoso.com", "timeout": "30", "signin": "oauth",
                "oauth": "ms", "oauth_flow": "delegated"}
        # a password with an OAuth client, or no client chosen: refused beside the field, nothing stored
        r = http.post("/admin/smtp", data={**smtp, "password": "hunter2-hunter2"})
        assert r.status_code == 422 and 'id="f-password-error"' in r.text and "hunter2" not in r.text
        r = http.post("/admin/smtp", data={**smtp, "oauth": ""})
        assert r.status_code == 422 and 'id="f-oauth-error"' in r.text
        assert web.bridge.json("smtp", "list") == []

        r = http.post("/admin/smtp", data=smtp)
        assert r.status_code == 303
        page = http.get(r.headers["location"])
        assert "Not signed in yet" in page.text and ">Sign in with Microsoft</button>" in page.text
        # the page may send its form on to Microsoft's sign-in origin, and nowhere else
        assert "form-action 'self' https://login.microsoftonline.com;" in page.headers["content-security-policy"]

        # an IMAP server with app-only access: no password, no sign-in
        imap = {"csrf_token": token, "name": "box", "host": "outlook.office365.com", "port": "993",
                "security": "ssl", "username": "jobs@contoso.com", "timeout": "30", "sent_folder": "auto",
                "poll_after": "seen", "signin": "oauth", "oauth": "ms", "oauth_flow": "app"}
        r = http.post("/admin/imap", data=imap)
        assert r.status_code == 303
        listing = http.get("/admin/imap").text
        assert "App-only access (no sign-in)" in listing
        server_id = re.search(r'href="/admin/imap/(\d+)"', listing).group(1)
        page = http.get(f"/admin/imap/{server_id}")
        assert "App-only access (no sign-in)" in page.text and "Sign in with Microsoft" not in page.text
        # back to a password: IMAP needs one, so it is asked for
        back = {**imap, "signin": "password"}
        r = http.post(f"/admin/imap/{server_id}", data=back)
        assert r.status_code == 422 and 'id="f-password-error"' in r.text
        r = http.post(f"/admin/imap/{server_id}", data={**back, "password": "imap-pass-1"})
        assert r.status_code == 303
        assert "App-only" not in http.get(f"/admin/imap/{server_id}").text

        # the alias page shows its SMTP account's state with the same button, which comes back to it
        web.bridge.run("alias", "add", "--employee", "1042", "--description", "Ana - jobs", "--display-name",
                       "Ana Ruiz", "--from", "jobs@contoso.com", "--smtp", "m365")
        alias_id = re.search(r'href="/admin/aliases/(\d+)"', http.get("/admin/aliases").text).group(1)
        page = http.get(f"/admin/aliases/{alias_id}")
        assert "SMTP account m365: OAuth sign-in" in page.text and "Not signed in yet" in page.text
        assert f'name="back" value="/admin/aliases/{alias_id}"' in page.text
        assert "https://login.microsoftonline.com" in page.headers["content-security-policy"]

        for path in ("/admin/oauth", "/admin/smtp", "/admin/imap", f"/admin/aliases/{alias_id}"):
            assert secret not in http.get(path).text


def test_google_service_account_key_is_taken_and_never_shown(web: Served) -> None:
    """Google Workspace app-only access from the page: the pasted JSON key becomes the client, write-only."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa


    private = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    key = json.dumps({"type": "service_account", "client_email": "bridge@project.iam.gserviceaccount.example",
                      "private_key": private, "token_uri": "https://oauth2.googleapis.com/token"})
    with signed_in_client(web, "admin@example.test") as (http, token):
        refused = http.post("/admin/oauth", data={"name": "gws", "provider": "microsoft", "service_account_key": key,
                                                  "csrf_token": token})
        assert refused.status_code == 422 and "for the google provider" in refused.text
        assert "PRIVATE KEY" not in refused.text  # a refused form does not send the key back
        r = http.post("/admin/oauth", data={"name": "gws", "provider": "google", "service_account_key": key,
                                            "csrf_token": token})
        assert r.status_code == 303, r.text
        page = http.get("/admin/oauth").text
    assert "bridge@project.iam.gserviceaccount.example" in page and "PRIVATE KEY" not in page
    [client] = web.bridge.json("oauth", "list")
    assert (client["provider"], client["client_id"], client["client_secret"]) == (
        "google", "bridge@project.iam.gserviceaccount.example", "set")
