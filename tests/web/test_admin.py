"""The admin pages, in Chromium and over HTTP against a real `serve`: set-up that works, refusals that change nothing.

The SMTP account points at a real aiosmtpd peer (STARTTLS with a private CA, AUTH), the IMAP server at a
real Dovecot; Test connection runs against them, so "Status: OK" and the diagnosis are the real ones.
"""

from __future__ import annotations

import re

from bridge.web import admin
from tests.servers.dovecot import Dovecot
from tests.servers.web import (
    PASSWORD,
    Served,
    connection_report,
    csrf_of,
    press_test_connection,
    screenshot,
    sign_in,
    signed_in_client,
)

SMTP_PASSWORD = "smtp-secret-1"
WRONG_SMTP_PASSWORD = "not-the-smtp-secret-7"
WRONG_IMAP_PASSWORD = "not-the-imap-secret-9"


def _submit(page, button: str, path: str) -> int:  # noqa: ANN001
    """Press a form's button and return the status of the POST it made (422 for refused input)."""
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith(path)) as answer:
        page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    return answer.value.status


def _error_beside(page, field_id: str) -> str:  # noqa: ANN001
    """The error shown next to a field, checked to be tied to it for screen readers."""
    described = page.locator(f"#{field_id}").get_attribute("aria-describedby") or ""
    assert f"{field_id}-error" in described.split(), f"{field_id} is not described by its error"
    return page.locator(f"#{field_id}-error").inner_text()


def test_admin_sets_up_smtp_imap_and_alias_and_tests_the_connections(web: Served, page, smtp_peer, tls_cert,  # noqa: ANN001
                                                                     dovecot: Dovecot) -> None:
    peer = smtp_peer("accept", tls="starttls", cert=tls_cert, auth=("ana", SMTP_PASSWORD))
    sign_in(page, web, "admin@example.test")

    # SMTP account: created in the form, then Test connection in its row
    page.get_by_role("link", name="SMTP accounts").click()
    assert page.locator("h1").inner_text() == "SMTP accounts"
    page.get_by_label("Name", exact=True).fill("office")
    page.get_by_label("Host", exact=True).fill("localhost")
    page.get_by_label("Port", exact=True).fill(str(peer.port))
    page.get_by_label("Security", exact=True).select_option("starttls")
    page.get_by_label("Username", exact=True).fill("ana")
    page.get_by_label("Password", exact=True).fill(SMTP_PASSWORD)
    page.get_by_label("CA file", exact=True).fill(str(tls_cert.cafile))
    page.get_by_label("Database-wide account").check()
    assert _submit(page, "Add SMTP account", "/admin/smtp") == 303
    assert "SMTP account 'office' added" in page.locator(".flash").inner_text()
    row = page.locator("tr", has_text="office")
    assert "set" in row.inner_text() and "yes" in row.inner_text()  # password set, database-wide
    assert "Status: OK" in press_test_connection(page, row)
    assert page.locator("h1").inner_text() == "SMTP account office"
    assert any(line.startswith("TLS: TLSv1") for line in connection_report(page))
    page.goto(f"{web.base_url}/admin/smtp")
    screenshot(page, "admin-smtp")

    # port out of range: the error beside "Port", the other typed values kept, nothing stored
    page.get_by_label("Name", exact=True).fill("second")
    page.get_by_label("Host", exact=True).fill("smtp.example.test")
    page.get_by_label("Port", exact=True).fill("70000")
    page.get_by_label("Username", exact=True).fill("someone")
    page.get_by_label("Password", exact=True).fill(SMTP_PASSWORD)
    assert _submit(page, "Add SMTP account", "/admin/smtp") == 422
    assert "out of range" in _error_beside(page, "f-port")
    assert page.get_by_label("Host", exact=True).input_value() == "smtp.example.test"
    assert page.get_by_label("Port", exact=True).input_value() == "70000"
    assert page.get_by_label("Password", exact=True).input_value() == ""  # never sent back
    assert [a["name"] for a in web.bridge.json("smtp", "list")] == ["office"]

    # IMAP server on the real Dovecot (implicit TLS with its private CA)
    page.get_by_role("link", name="IMAP servers").click()
    page.get_by_label("Name", exact=True).fill("mailbox")
    page.get_by_label("Host", exact=True).fill("localhost")
    page.get_by_label("Port", exact=True).fill(str(dovecot.ssl_port))
    page.get_by_label("Security", exact=True).select_option("ssl")
    page.get_by_label("Username", exact=True).fill(dovecot.user)
    page.get_by_label("Password", exact=True).fill(dovecot.password)
    page.get_by_label("CA file", exact=True).fill(str(dovecot.cafile))
    assert page.get_by_label("Sent folder", exact=True).input_value() == "auto"
    assert _submit(page, "Add IMAP server", "/admin/imap") == 303
    shown = press_test_connection(page, page.locator("tr", has_text="mailbox"))
    assert shown[-2:] == ["Sent folder: Sent", "Status: OK"]

    # an alias for employee 1042, sending through "office", linked to "mailbox"
    page.get_by_role("link", name="Aliases").click()
    page.get_by_label("Employee", exact=True).select_option("1042")
    page.get_by_label("Description", exact=True).fill("Ana at Acme")
    page.get_by_label("Display name", exact=True).fill("Ana Ruiz")
    page.get_by_label("From address", exact=True).fill("ana@example.test")
    page.get_by_label("SMTP account", exact=True).select_option("office")
    page.get_by_label("IMAP server", exact=True).select_option("mailbox")
    page.get_by_label("Delay between emails (ms)", exact=True).fill("250")
    assert _submit(page, "Add alias", "/admin/aliases") == 303
    [alias] = web.bridge.json("alias", "list")
    assert (alias["employee_number"], alias["smtp"], alias["imap"], alias["delay_ms"], alias["default"]) == (
        1042, "office", "mailbox", 250, True)

    # the same description again (any case) is refused beside "Description"
    page.get_by_label("Employee", exact=True).select_option("1")
    page.get_by_label("Description", exact=True).fill("ana at acme")
    page.get_by_label("Display name", exact=True).fill("Someone else")
    page.get_by_label("From address", exact=True).fill("admin@example.test")
    assert _submit(page, "Add alias", "/admin/aliases") == 422
    assert "exists already" in _error_beside(page, "f-description")
    assert page.get_by_label("Display name", exact=True).input_value() == "Someone else"
    assert len(web.bridge.json("alias", "list")) == 1
    page.goto(f"{web.base_url}/admin/aliases")
    screenshot(page, "admin-aliases")

    # editing without typing a password keeps the stored one: MAIL FROM now runs as 1042's numbered address
    page.goto(f"{web.base_url}/admin/smtp")
    page.get_by_role("link", name="office").first.click()
    assert page.get_by_text("set; leave empty to keep it").is_visible()
    page.get_by_label("Timeout", exact=True).fill("12")
    assert _submit(page, "Save", "/admin/smtp/1") == 303
    shown = press_test_connection(page)
    assert "MAIL FROM:<jobs+1042@example.test> accepted (250)" in shown and shown[-1] == "Status: OK"

    # a wrong password: the diagnosis and hint on the page, line for line what `replybridge test smtp` prints
    page.get_by_label("Password", exact=True).fill(WRONG_SMTP_PASSWORD)
    assert _submit(page, "Save", "/admin/smtp/1") == 303
    shown = press_test_connection(page)
    assert "Status: FAILED" in shown and shown[-2].startswith("Diagnosis: 535") and shown[-1].startswith("Hint: ")
    cli = web.bridge.run("test", "smtp", "office", ok=False)
    assert cli.exit_code == 1 and cli.stdout.splitlines() == shown

    page.goto(f"{web.base_url}/admin/imap/1")
    page.get_by_label("Password", exact=True).fill(WRONG_IMAP_PASSWORD)
    assert _submit(page, "Save", "/admin/imap/1") == 303
    shown = press_test_connection(page)
    assert "Status: FAILED" in shown and shown[-2].startswith("Diagnosis: ") and shown[-1].startswith("Hint: ")

    # no password, right or wrong, in any admin page's HTML nor in serve's output
    secrets = (SMTP_PASSWORD, WRONG_SMTP_PASSWORD, dovecot.password, WRONG_IMAP_PASSWORD)
    urls = ["/admin/employees", "/admin/employees/1", "/admin/employees/1042", "/admin/smtp", "/admin/smtp/1",
            "/admin/imap", "/admin/imap/1", "/admin/aliases", "/admin/aliases/1", "/admin/settings"]
    for url in urls:
        answer = page.request.get(f"{web.base_url}{url}")
        assert answer.status == 200, url
        assert not [s for s in secrets if s in answer.text()], f"a password is in the HTML of {url}"
    assert not [s for s in secrets if s in web.output()], "a password is in serve's output"
    assert page.errors == []


def _routes() -> list[tuple[str, str]]:
    """Every admin route (method, path with ids filled in), read from the routers themselves."""
    ids = {"{number}": "1", "{record_id}": "1", "{alias_id}": "1"}
    found = []
    for router in admin.routers:
        for route in router.routes:
            path = route.path
            for placeholder, value in ids.items():
                path = path.replace(placeholder, value)
            assert "{" not in path, f"no id to fill in for {route.path}"
            found += [(method, path) for method in sorted(route.methods)]
    return found


def _set_up_one_of_each(web: Served) -> None:
    web.bridge.run("smtp", "add", "office", "--host", "smtp.example.test", "--port", "587", "--security", "starttls",
                   "--username", "ana", "--password-stdin", stdin=SMTP_PASSWORD + "\n")
    web.bridge.run("imap", "add", "mailbox", "--host", "imap.example.test", "--port", "993", "--security", "ssl",
                   "--username", "ana", "--password-stdin", stdin="imap-secret-2\n")
    web.bridge.run("alias", "add", "--employee", "1042", "--description", "Ana at Acme", "--display-name", "Ana",
                   "--from", "ana@example.test")


def _state(web: Served) -> list[object]:
    return [web.bridge.json(*args) for args in (("employee", "list"), ("smtp", "list"), ("imap", "list"),
                                                ("alias", "list"), ("settings", "show"))]


def test_recruiter_gets_403_on_every_admin_url(web: Served) -> None:
    _set_up_one_of_each(web)
    routes = _routes()
    assert {("GET", "/admin/settings"), ("POST", "/admin/smtp/1/test"), ("POST", "/admin/employees/1/deactivate"),
            ("POST", "/admin/employees/1/password")} <= set(routes)
    before = _state(web)
    with signed_in_client(web, "ana@example.test") as (http, token):
        answers = {(method, path): http.request(method, path, data={"csrf_token": token, "name": "x", "port": "25",
                                                                     "new_password": "a-new-password-1",
                                                                     "reply_address": "x+{number}@example.test"}
                                                if method == "POST" else None).status_code
                   for method, path in routes}
    assert {key: code for key, code in answers.items() if code != 403} == {}
    assert _state(web) == before
    with web.client() as anonymous:  # not signed in: to the sign-in page
        assert anonymous.get("/admin/smtp").headers["location"].startswith("/login")


def test_form_post_without_csrf_token_is_refused_and_changes_nothing(web: Served) -> None:
    before = _state(web)
    with signed_in_client(web, "admin@example.test") as (http, token):
        posts = {"/admin/smtp": {"name": "office", "host": "smtp.example.test", "port": "25", "security": "none",
                                 "timeout": "30"},
                 "/admin/employees": {"number": "2001", "name": "Ben", "email": "ben@example.test", "active": "1"},
                 "/admin/employees/1042/deactivate": {},
                 "/admin/settings": {"mailer_name": "Forged"}}
        for path, data in posts.items():
            r = http.post(path, data=data)
            assert r.status_code == 403 and "nothing was changed" in r.text, path
            r = http.post(path, data={**data, "csrf_token": "forged"})
            assert r.status_code == 403, path
        assert _state(web) == before
        # with its token the same post goes through: the refusal was the token, nothing else
        assert http.post("/admin/settings", data={"mailer_name": "Acme ATS", "csrf_token": token}).status_code == 303
    assert web.bridge.json("settings", "show")["mailer_name"] == "Acme ATS"


def test_settings_refuse_a_template_without_number_beside_the_field(web: Served, page) -> None:  # noqa: ANN001
    before = web.bridge.json("settings", "show")
    sign_in(page, web, "admin@example.test")
    page.get_by_role("link", name="Settings").click()
    assert page.locator("h1").inner_text() == "Settings"
    assert page.get_by_label("Reply address template").input_value() == "jobs+{number}@example.test"
    page.get_by_label("Reply address template").fill("jobs@example.test")
    page.get_by_label("Mailer name").fill("Acme ATS")  # valid, but not stored while another value is refused
    assert _submit(page, "Save settings", "/admin/settings") == 422
    assert "{number}" in _error_beside(page, "f-reply_address")
    assert page.get_by_label("Mailer name").input_value() == "Acme ATS"
    assert web.bridge.json("settings", "show") == before

    page.get_by_label("Reply address template").fill("jobs+{number}@example.test")
    page.get_by_label("Accepted domains").fill("example.test, jobs.example.test")
    page.get_by_label("Sender mode").select_option("reply-to")
    page.get_by_label("Acknowledgement", exact=True).fill("Thank you for your answer.\nWe will reply soon.")
    assert _submit(page, "Save settings", "/admin/settings") == 303
    after = web.bridge.json("settings", "show")
    assert (after["mailer_name"], after["accepted_domains"], after["sender_mode"]) == (
        "Acme ATS", ["example.test", "jobs.example.test"], "reply-to")
    assert after["acknowledgement"] == "Thank you for your answer.\nWe will reply soon."
    assert after["reply_address"] == before["reply_address"] and after["retry_delays"] == before["retry_delays"]
    assert page.get_by_label("Accepted domains").input_value() == "example.test, jobs.example.test"


def test_admin_adds_an_employee_sets_a_password_and_deactivates_them(web: Served, page) -> None:  # noqa: ANN001
    sign_in(page, web, "admin@example.test")
    page.get_by_role("link", name="Employees").click()
    page.get_by_label("Number", exact=True).fill("1042")
    page.get_by_label("Name", exact=True).fill("Ben Stone")
    page.get_by_label("Email", exact=True).fill("ben@example.test")
    assert _submit(page, "Add employee", "/admin/employees") == 422
    assert "exists already" in _error_beside(page, "f-number")
    page.get_by_label("Number", exact=True).fill("2001")
    page.get_by_label("Email", exact=True).fill("ben at example")
    assert _submit(page, "Add employee", "/admin/employees") == 422
    assert "not an e-mail address" in _error_beside(page, "f-email")
    assert page.get_by_label("Name", exact=True).input_value() == "Ben Stone"
    page.get_by_label("Email", exact=True).fill("ben@example.test")
    assert _submit(page, "Add employee", "/admin/employees") == 303
    ben = next(e for e in web.bridge.json("employee", "list") if e["number"] == 2001)
    assert (ben["name"], ben["email"], ben["active"], ben["admin"]) == ("Ben Stone", "ben@example.test", True, False)

    page.locator("tr", has_text="Ben Stone").get_by_role("link", name="Edit").click()
    page.get_by_label("New password").fill("short")
    assert _submit(page, "Set password", "/admin/employees/2001/password") == 422
    assert "at least 10 characters" in _error_beside(page, "f-new_password")
    page.get_by_label("New password").fill(PASSWORD)
    assert _submit(page, "Set password", "/admin/employees/2001/password") == 303
    assert "password set" in page.locator(".flash").inner_text()
    assert PASSWORD not in page.content()
    with signed_in_client(web, "ben@example.test"):  # the password works
        pass

    page.get_by_label("Admin", exact=True).check()
    assert _submit(page, "Save", "/admin/employees/2001") == 303
    page.goto(f"{web.base_url}/admin/employees")
    page.locator("tr", has_text="Ben Stone").get_by_role("button", name="Deactivate").click()
    page.wait_for_load_state()
    assert page.locator("tr", has_text="Ben Stone").get_by_role("button", name="Activate").is_visible()
    ben = next(e for e in web.bridge.json("employee", "list") if e["number"] == 2001)
    assert (ben["admin"], ben["active"]) == (True, False)
    with web.client() as http:
        token = csrf_of(http.get("/login").text)
        r = http.post("/login", data={"email": "ben@example.test", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 401


def test_an_admin_cannot_lock_themselves_out(web: Served) -> None:
    with signed_in_client(web, "admin@example.test") as (http, token):
        r = http.post("/admin/employees/1/deactivate", data={"csrf_token": token})
        assert r.status_code == 422 and "cannot deactivate yourself" in r.text
        r = http.post("/admin/employees/1", data={"csrf_token": token, "name": "Ada Admin",
                                                  "email": "admin@example.test", "delivery": "forward"})
        assert r.status_code == 422 and 'id="f-admin-error"' in r.text
    me = next(e for e in web.bridge.json("employee", "list") if e["number"] == 1)
    assert (me["active"], me["admin"]) == (True, True)


BAD_INPUT = [  # (form, typed values, the field the error is beside, words of the error)
    ("/admin/smtp", {"name": "a", "host": "h.test", "port": "25", "security": "tls", "timeout": "30"},
     "security", "is not one of"),
    ("/admin/smtp", {"name": "a", "host": "h.test", "port": "x25", "security": "none", "timeout": "30"},
     "port", "not a whole number"),
    ("/admin/smtp", {"name": "a", "host": "h.test:587", "port": "25", "security": "none", "timeout": "30"},
     "host", "holds a port"),
    ("/admin/smtp", {"name": "a", "host": "h.test", "port": "25", "security": "none", "timeout": "30",
                     "password": "pw-without-user"}, "username", "needs a --username"),
    ("/admin/imap", {"name": "a", "host": "h.test", "port": "993", "security": "ssl", "timeout": "30",
                     "username": "u", "password": "p", "sent_folder": "auto", "poll_folder": "Sent"},
     "poll_folder", "is a Sent folder"),
    ("/admin/imap", {"name": "a", "host": "h.test", "port": "993", "security": "ssl", "timeout": "30",
                     "username": "u", "sent_folder": "auto"}, "password", "needs --username and a password"),
    ("/admin/aliases", {"employee": "1042", "description": "d", "display_name": "D", "from_address": "nope",
                        "delay_ms": "0"}, "from_address", "not an e-mail address"),
    ("/admin/aliases", {"employee": "1042", "description": "d", "display_name": "D", "from_address": "d@example.test",
                        "delay_ms": "-5"}, "delay_ms", "between 0 and 3600000"),
]


def test_bad_input_is_refused_beside_its_field(web: Served) -> None:
    before = _state(web)
    with signed_in_client(web, "admin@example.test") as (http, token):
        for path, data, field, words in BAD_INPUT:
            r = http.post(path, data={**data, "csrf_token": token})
            assert r.status_code == 422, (path, field)
            error = re.search(rf'<p class="field-error" id="f-{field}-error">([^<]*)</p>', r.text)
            assert error and words in error.group(1), (field, r.text)
            described = re.search(rf'id="f-{field}"[^>]*aria-describedby="([^"]*)"', r.text)
            assert described and f"f-{field}-error" in described.group(1).split(), field
            assert "pw-without-user" not in r.text
    assert _state(web) == before


def test_the_form_mends_an_app_password_and_host_port_and_says_so(web: Served) -> None:
    """The CLI's set-up checks on the page: the note is shown, the stored values are the mended ones."""
    with signed_in_client(web, "admin@example.test") as (http, token):
        r = http.post("/admin/smtp", data={"name": "gmail", "host": "smtp.example.test:587", "port": "",
                                            "security": "starttls", "timeout": "30", "username": "ana@example.test",
                                            "password": "abcd efgh ijkl mnop", "sign_in": "password",
                                            "csrf_token": token})
        assert r.status_code == 303, r.text
        page = http.get(r.headers["location"]).text
    assert "Note:" in page and "spaces" in page and "abcd efgh" not in page and "abcdefghijklmnop" not in page
    [account] = web.bridge.json("smtp", "list")
    assert (account["host"], account["port"]) == ("smtp.example.test", 587)
    from sqlmodel import Session, select

    from bridge import crypto
    from models import SmtpAccount

    with Session(web.bridge.engine()) as session:
        stored = session.exec(select(SmtpAccount.secret)).one()
    assert crypto.decrypt(stored).reveal() == "abcdefghijklmnop"


def test_a_poll_folder_added_to_a_running_serve_is_watched_and_its_state_shown(  # noqa: ANN001
        web: Served, dovecot: Dovecot, monkeypatch) -> None:
    from tests.helpers.inbound import deliver, routed
    from tests.helpers.messages import candidate
    from tests.helpers.setup_steps import add_poller

    add_poller(web.bridge, dovecot, monkeypatch)  # while serve runs: no restart
    deliver(dovecot, [candidate(1)])
    routed(web.bridge, 1, timeout=30)
    with signed_in_client(web, "admin@example.test") as (http, _token):
        def watched() -> str | None:
            text = http.get("/admin/imap").text
            return text if "watched by" in text else None

        page = web.wait_for(watched, 20, "the IMAP page to show who watches the folder")
    state = re.sub(r"\s+", " ", page.split('class="poll-state muted">', 1)[1].split("</div>", 1)[0])
    assert re.fullmatch(r"last pass: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; 0 waiting; watched by [^:]+:\d+", state), state
    assert f":{web.proc.pid}" in state  # this serve, host:pid


def test_send_test_report_from_the_settings_page(web: Served, smtp_peer) -> None:  # noqa: ANN001
    peer = smtp_peer("accept")
    web.bridge.run("smtp", "add", "shared", "--host", peer.host, "--port", str(peer.port), "--security", "none",
                   "--default")
    with signed_in_client(web, "admin@example.test") as (http, token):
        missing = http.post("/admin/settings/test-report", data={"csrf_token": token})
        assert missing.status_code == 200 and "Status: FAILED" in missing.text and "report_to" in missing.text
        web.bridge.run("settings", "set", "report_to", "ops@example.test")
        web.bridge.run("settings", "set", "report_from", "bridge@example.test")
        sent = http.post("/admin/settings/test-report", data={"csrf_token": token})
        assert sent.status_code == 200 and "Status: OK" in sent.text and "Test report" in sent.text
        assert http.post("/admin/settings/test-report", data={}).status_code == 403  # no CSRF token: refused
    [mail] = peer.received
    assert mail.rcpt_tos == ["ops@example.test"] and b"Sample report" in mail.data


def test_test_connection_on_the_alias_page_tries_its_account_and_sent_folder(web: Served, page, smtp_peer,  # noqa: ANN001
                                                                             dovecot: Dovecot,
                                                                             monkeypatch) -> None:  # noqa: ANN001
    from tests.helpers.setup_steps import add_imap

    refusing = smtp_peer("relay_denied")  # takes MAIL FROM, refuses RCPT to an outside address
    web.bridge.run("smtp", "add", "office", "--host", refusing.host, "--port", str(refusing.port), "--security", "none")
    add_imap(web.bridge, dovecot, monkeypatch)
    web.bridge.run("alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana",
                   "--from", "ana@example.test", "--smtp", "office", "--imap", "mailbox")
    web.bridge.run("settings", "set", "test_recipient", "someone@outside.example.org")
    sign_in(page, web, "admin@example.test")
    page.goto(f"{web.base_url}/admin/aliases/1")
    press_test_connection(page)
    sections = page.locator("section.report")
    assert sections.count() == 2
    smtp_lines = sections.nth(0).inner_text()
    assert "Test connection: SMTP account office" in smtp_lines
    assert "MAIL FROM:<jobs+1042@example.test> accepted" in smtp_lines  # the alias's numbered address
    assert "Status: FAILED" in smtp_lines and "550 5.7.1 Unable to relay (at rcpt)" in smtp_lines
    imap_lines = sections.nth(1).inner_text()
    assert "IMAP server mailbox (Sent folder)" in imap_lines and "Sent folder: Sent" in imap_lines
    assert "Status: OK" in imap_lines
    screenshot(page, "admin-alias-test")


def test_send_test_message_from_the_smtp_account_page(web: Served, smtp_peer) -> None:  # noqa: ANN001
    peer = smtp_peer("accept")
    web.bridge.run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none")
    web.bridge.run("alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana",
                   "--from", "ana@example.test", "--smtp", "office")
    with signed_in_client(web, "admin@example.test") as (http, token):
        assert 'name="send_to"' in http.get("/admin/smtp/1").text
        bad = http.post("/admin/smtp/1/test", data={"csrf_token": token, "send_to": "not an address"})
        assert bad.status_code == 200 and "Status: FAILED" in bad.text and peer.received == []
        sent = http.post("/admin/smtp/1/test", data={"csrf_token": token, "send_to": "me@outside.example.org"})
    assert "Test message sent to me@outside.example.org: 250" in sent.text and "Status: OK" in sent.text
    [got] = peer.received
    assert got.rcpt_tos == ["me@outside.example.org"] and got.mail_from == "jobs+1042@example.test"


def test_removing_set_up_from_the_pages_asks_first_and_names_what_still_uses_it(web: Served, page,  # noqa: ANN001
                                                                                smtp_peer) -> None:  # noqa: ANN001
    peer = smtp_peer("accept")
    web.bridge.run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none")
    web.bridge.run("alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana",
                   "--from", "ana@example.test", "--smtp", "office")
    sign_in(page, web, "admin@example.test")
    page.goto(f"{web.base_url}/admin/smtp/1")
    page.get_by_role("link", name="Remove…").click()
    assert page.locator("h1").inner_text() == "Remove SMTP account office?"
    assert len(web.bridge.json("smtp", "list")) == 1  # asking removed nothing
    page.get_by_role("button", name="Remove SMTP account").click()
    assert "Not removed:" in page.get_by_role("alert").inner_text() and "'Ana jobs'" in page.content()
    assert len(web.bridge.json("smtp", "list")) == 1

    page.goto(f"{web.base_url}/admin/aliases/1")
    page.get_by_role("link", name="Remove…").click()
    page.get_by_role("button", name="Remove alias").click()
    assert "Alias 'Ana jobs' removed" in page.locator(".flash").inner_text()
    page.goto(f"{web.base_url}/admin/smtp/1/remove")
    page.get_by_role("button", name="Remove SMTP account").click()
    assert "SMTP account 'office' removed" in page.locator(".flash").inner_text()
    assert web.bridge.json("smtp", "list") == [] and web.bridge.json("alias", "list") == []
    with signed_in_client(web, "admin@example.test") as (http, _token):  # without the form's token: refused
        assert http.post("/admin/aliases/1/remove", data={}).status_code == 403


def test_the_smtp_account_page_sets_its_sender_identity(web: Served) -> None:
    web.bridge.run("smtp", "add", "wide", "--host", "smtp.example.test", "--port", "587", "--security", "starttls",
                   "--default")
    with signed_in_client(web, "admin@example.test") as (http, token):
        form = {"csrf_token": token, "name": "wide", "host": "smtp.example.test", "port": "587",
                "security": "starttls", "timeout": "30", "signin": "password", "is_default": "1"}
        bad = http.post("/admin/smtp/1", data={**form, "from_name": "Acme", "from_address": "not an address"})
        assert bad.status_code == 422 and "from address" in bad.text
        assert web.bridge.json("smtp", "list")[0]["from_address"] is None  # nothing changed
        ok = http.post("/admin/smtp/1", data={**form, "from_name": "Acme Careers",
                                               "from_address": "careers@example.test"})
        assert ok.status_code == 303
    [shown] = web.bridge.json("smtp", "list")
    assert (shown["from_name"], shown["from_address"], shown["default"]) == ("Acme Careers", "careers@example.test",
                                                                             True)
