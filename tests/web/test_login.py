"""Sign-in, sign-out, the CSRF token and the security headers, over real HTTP and in Chromium."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from tests.servers.web import PASSWORD, Served, csrf_of, screenshot, sign_in


def test_sign_in_and_out_in_the_browser(web: Served, page) -> None:  # noqa: ANN001
    page.goto(f"{web.base_url}/unassigned")
    assert "/login" in page.url  # not signed in: sent to the sign-in page
    assert page.locator("h1").inner_text() == "Sign in"
    screenshot(page, "login")
    sign_in(page, web, "ana@example.test")
    assert page.url.endswith("/unassigned")
    assert page.get_by_role("link", name=re.compile(r"Unassigned messages \(\d+\)")).is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login$"))
    page.goto(f"{web.base_url}/unassigned")
    assert "/login" in page.url


def test_wrong_email_and_wrong_password_get_the_same_answer(web: Served) -> None:
    answers = []
    for email, password in (("nobody@example.test", PASSWORD), ("ana@example.test", "wrong password!!")):
        with web.client() as http:
            token = csrf_of(http.get("/login").text)
            r = http.post("/login", data={"email": email, "password": password, "csrf_token": token})
            answers.append((r.status_code, "Wrong email or password" in r.text))
    assert answers == [(401, True), (401, True)]


def test_repeated_failures_are_slowed_down(web: Served) -> None:
    with web.client() as http:
        token = csrf_of(http.get("/login").text)
        codes = [http.post("/login", data={"email": "ana@example.test", "password": f"nope-{i}-xxxxxx",
                                           "csrf_token": token}).status_code for i in range(7)]
        assert codes[:5] == [401] * 5 and 429 in codes[5:]
        # even the right password waits now: the address must slow down
        r = http.post("/login", data={"email": "ana@example.test", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 429 and "Try again in" in r.text


def test_post_without_csrf_token_is_refused(web: Served) -> None:
    with web.client() as http:
        r = http.post("/login", data={"email": "ana@example.test", "password": PASSWORD})
        assert r.status_code == 403 and "nothing was changed" in r.text
        assert "replybridge_session" not in r.headers.get("set-cookie", "") or "uid" not in r.text


def test_session_cookie_and_security_headers(web: Served) -> None:
    with web.client() as http:
        token = csrf_of(http.get("/login").text)
        r = http.post("/login", data={"email": "ana@example.test", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        page = http.get("/unassigned")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"


def test_deactivated_employee_is_signed_out(web: Served) -> None:
    with web.client() as http:
        token = csrf_of(http.get("/login").text)
        http.post("/login", data={"email": "ana@example.test", "password": PASSWORD, "csrf_token": token})
        assert http.get("/unassigned").status_code == 200
        web.bridge.run("employee", "deactivate", "1042")
        r = http.get("/unassigned")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_healthz(web: Served) -> None:
    with web.client() as http:
        r = http.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_open_redirect_refused(web: Served) -> None:
    with web.client() as http:
        token = csrf_of(http.get("/login").text)
        r = http.post("/login", data={"email": "ana@example.test", "password": PASSWORD, "csrf_token": token,
                                      "next": "https://evil.example/"})
    assert r.headers["location"] == "/unassigned"


def _guess(served: Served, email: str, headers: dict[str, str] | None = None) -> int:
    with served.client() as http:
        token = csrf_of(http.get("/login").text)
        return http.post("/login", data={"email": email, "password": "wrong-password!", "csrf_token": token},
                         headers=headers or {}).status_code


def test_x_forwarded_for_is_not_trusted_unless_a_proxy_is_named(web: Served) -> None:
    """Rotating the header does not dodge the count: the address is the socket's (no proxy named)."""
    codes = [_guess(web, f"user{n}@example.test", {"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(23)]
    assert codes[:20] == [401] * 20 and 429 in codes[20:], codes


def test_forty_guesses_at_once_check_only_the_free_ones(web_both: Served) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda _n: _guess(web_both, "ana@example.test"), range(40)))
    assert codes.count(401) <= 6 and codes.count(429) >= 34, sorted(codes)  # 5 free, the 6th sets the wait
    with web_both.bridge.engine().connect() as conn:  # kept in the database: every web process agrees
        failures = conn.execute(text("SELECT failures FROM auth_throttle WHERE key LIKE '%ana@example.test'")).scalar()
    assert failures is not None and failures >= 6


def test_sign_out_ends_the_session_for_a_copied_cookie(web: Served) -> None:
    with web.client() as http:
        token = csrf_of(http.get("/login").text)
        http.post("/login", data={"email": "ana@example.test", "password": PASSWORD, "csrf_token": token})
        copied = dict(http.cookies)
        token = csrf_of(http.get("/unassigned").text)
        assert http.post("/logout", data={"csrf_token": token}).status_code == 303
    with web.client(cookies=copied) as thief:
        r = thief.get("/unassigned")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_cookie_from_before_a_deactivation_stays_dead_after_reactivation(web: Served) -> None:
    with web.client() as http:
        token = csrf_of(http.get("/login").text)
        http.post("/login", data={"email": "ana@example.test", "password": PASSWORD, "csrf_token": token})
        web.bridge.run("employee", "deactivate", "1042")
        web.bridge.run("employee", "activate", "1042")
        r = http.get("/unassigned")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
