"""`replybridge serve` as a real process on loopback ports, and headless Chromium driven by Playwright.

The web tests talk to the same server a user starts: SMTP receiver, worker, routing process and web
pages in one `serve`, on free ports, against the test's database. Set-up stays in-process (the
`bridge` fixtures) because it is the same database; only what the pages do goes over HTTP.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.helpers.bridge import Bridge

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
# where the tests save pictures of the main pages (README's picture is one of them)
SCREENSHOTS = Path(os.environ.get("REPLYBRIDGE_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "screenshots")
PASSWORD = "correct horse battery"  # every test user's password


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A running `replybridge serve`: its web base URL, its SMTP port, and its output so far."""

    base_url: str
    smtp_port: int
    proc: subprocess.Popen[str]
    log_path: Path
    bridge: Bridge
    extra: dict[str, object] = field(default_factory=dict)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=15, follow_redirects=False, **kwargs)

    def wait_for(self, condition, timeout: float = 20, what: str = "condition"):  # noqa: ANN001, ANN201
        """Poll `condition()` until truthy (the worker and the routing process run on their own clock)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; serve said:\n{self.output()[-3000:]}")


def start_serve(bridge: Bridge, tmp_path: Path, env_extra: dict[str, str] | None = None) -> Served:
    env = dict(os.environ)
    smtp_port, web_port = free_port(), free_port()
    env.update({"REPLYBRIDGE_SMTP_PORT": str(smtp_port), "REPLYBRIDGE_WEB_PORT": str(web_port),
                "REPLYBRIDGE_WORKER_INTERVAL": "0.3", **(env_extra or {})})
    log_path = tmp_path / f"serve-{web_port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-c", "from bridge.cli import main; main()", "serve"], cwd=tmp_path,
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    served = Served(f"http://127.0.0.1:{web_port}", smtp_port, proc, log_path, bridge)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}:\n{served.output()}")
        try:
            if httpx.get(f"{served.base_url}/healthz", timeout=1).status_code == 200:
                return served
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_serve(served)
    raise AssertionError(f"serve did not answer /healthz in 30 s:\n{served.output()}")


def stop_serve(served: Served) -> None:
    if served.proc.poll() is None:
        os.killpg(served.proc.pid, signal.SIGTERM)
        try:
            served.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(served.proc.pid, signal.SIGKILL)
            served.proc.wait()


def add_user(bridge: Bridge, number: int, name: str, email: str, *, admin: bool = False,
             password: str = PASSWORD) -> None:
    """An employee who can sign in (employee 1042 exists already in the bridge fixtures)."""
    if number != 1042:
        bridge.run("employee", "add", "--number", str(number), "--name", name, "--email", email,
                   *(["--admin"] if admin else []))
    bridge.run("employee", "set-password", str(number), "--password-stdin", stdin=password + "\n")


@pytest.fixture
def web(lite_bridge: Bridge, tmp_path: Path) -> Iterator[Served]:
    """`serve` on SQLite with an admin (1, admin@example.test) and recruiter 1042 (ana@example.test)."""
    add_user(lite_bridge, 1, "Ada Admin", "admin@example.test", admin=True)
    add_user(lite_bridge, 1042, "Ana Ruiz", "ana@example.test")
    served = start_serve(lite_bridge, tmp_path)
    yield served
    stop_serve(served)


@pytest.fixture
def web_both(bridge: Bridge, tmp_path: Path) -> Iterator[Served]:
    """The same on SQLite and on PostgreSQL, for what the pages and the API store."""
    add_user(bridge, 1, "Ada Admin", "admin@example.test", admin=True)
    add_user(bridge, 1042, "Ana Ruiz", "ana@example.test")
    served = start_serve(bridge, tmp_path)
    yield served
    stop_serve(served)


@pytest.fixture(scope="session")
def browser():  # noqa: ANN201 - playwright.sync_api.Browser
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):  # noqa: ANN001, ANN201 - playwright Browser / Page
    """A fresh browser context (no cookies) per test; console errors are collected on page.errors."""
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    yield pg
    context.close()


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@contextmanager
def signed_in_client(served: Served, email: str, password: str = PASSWORD) -> Iterator[tuple[httpx.Client, str]]:
    """An HTTP client signed in as `email`, and its session's CSRF token (signing in starts a new session
    with a token of its own, so it is read from a page after the sign-in)."""
    with served.client() as http:
        r = http.post("/login", data={"email": email, "password": password,
                                      "csrf_token": csrf_of(http.get("/login").text)})
        assert r.status_code == 303, r.text
        yield http, csrf_of(http.get("/unassigned").text)


def sign_in(page, served: Served, email: str, password: str = PASSWORD) -> None:  # noqa: ANN001
    page.goto(f"{served.base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, f"sign-in as {email} failed: {page.content()[:2000]}"


def connection_report(page) -> list[str]:  # noqa: ANN001
    """The lines of the Test connection report on the page."""
    return page.locator(".report-lines li").all_inner_texts()


def press_test_connection(page, scope=None) -> list[str]:  # noqa: ANN001
    """Press Test connection (in `scope`, else the page's only one) and return the report once its page has
    loaded: the check takes a while, and a report read before the new page is there is empty. Dovecot
    itself sometimes answers a login under load with "[UNAVAILABLE] Temporary authentication failure": a
    person presses again, and so does this."""
    for _ in range(3):
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/test")):
            (scope or page).get_by_role("button", name="Test connection").click()
        page.wait_for_load_state()
        page.locator(".report-lines li").last.wait_for()
        lines = connection_report(page)
        if not any("[UNAVAILABLE]" in line for line in lines):
            break
        scope = None  # the report's page has the one button
    return lines


def screenshot(page, name: str) -> None:  # noqa: ANN001
    """A full-page picture in screenshots/ (or where REPLYBRIDGE_SCREENSHOTS points)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
