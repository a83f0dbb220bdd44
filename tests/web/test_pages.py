"""The Mail Log and My conversations pages, in Chromium against a real `serve`."""

from __future__ import annotations

import re
import smtplib

from tests.helpers.messages import reply
from tests.servers.web import Served, add_user, screenshot, sign_in


def _log(web: Served) -> list[dict]:
    return web.bridge.json("log")


def test_mail_log_shows_the_hint_and_queue_again_sends(web: Served, page, smtp_peer) -> None:  # noqa: ANN001
    web.bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Backend engineer",
                   "--body", "Hello!")
    web.wait_for(lambda: _log(web)[0]["status"] == "not_sent", what="not_sent without an SMTP account")
    sign_in(page, web, "ana@example.test")
    page.get_by_role("link", name="Mail Log").click()
    assert page.locator("h1").inner_text() == "Mail Log"
    row = page.locator("tr", has_text="Backend engineer")
    assert "not_sent" in row.inner_text() and "database-wide account" in row.inner_text()
    screenshot(page, "mail-log")

    peer = smtp_peer("accept")
    web.bridge.run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none",
                   "--default")
    row.get_by_role("button", name="Queue again").click()
    assert "queued again" in page.locator(".flash").inner_text()
    web.wait_for(lambda: _log(web)[0]["status"] == "sent", what="sent after Queue again")
    assert len(peer.received) == 1
    page.get_by_label("Status").select_option("sent")
    page.get_by_role("button", name="Filter").click()
    assert "sent" in page.locator("tr", has_text="Backend engineer").inner_text()


def test_recruiter_sees_only_their_own_mail(web: Served, page) -> None:  # noqa: ANN001
    add_user(web.bridge, 2001, "Ben Stone", "ben@example.test")
    web.bridge.run("send", "--employee", "2001", "--to", "other@example.org", "--subject", "Ben's secret role",
                   "--body", "x")
    web.bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Ana's role", "--body", "x")
    web.wait_for(lambda: all(e["status"] == "not_sent" for e in _log(web)), what="both not_sent")
    bens = next(e["id"] for e in _log(web) if e["employee_number"] == 2001)
    sign_in(page, web, "ana@example.test")
    page.goto(f"{web.base_url}/log")
    text = page.locator("main").inner_text()
    assert "Ana's role" in text and "Ben's secret role" not in text
    # not only hidden: the action is refused too, and changes nothing
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"{web.base_url}/log/{bens}/requeue", form={"csrf_token": token})
    assert answer.status == 403
    assert next(e for e in _log(web) if e["id"] == bens)["status"] == "not_sent"


def test_conversation_thread_in_order(web: Served, page) -> None:  # noqa: ANN001
    web.bridge.run("send", "--employee", "1042", "--to", "cara@example.org", "--to-name", "Cara Diaz",
                   "--subject", "Interview", "--body", "Could you come on Monday?")
    sent = web.wait_for(lambda: _log(web), what="the Mail Log entry")[0]
    answer = reply("cara-1@example.org", "Cara Diaz <cara@example.org>", "jobs+1042@example.test",
                   in_reply_to=sent["message_id"], body="Monday works for me.\r\n")
    with smtplib.SMTP("127.0.0.1", web.smtp_port, timeout=10) as smtp:
        smtp.sendmail("cara@example.org", ["jobs+1042@example.test"], answer.encode())
    web.wait_for(lambda: any(m["route"] == "employee" for m in web.bridge.json("messages", "list")),
                 what="the reply routed")
    sign_in(page, web, "ana@example.test")
    page.get_by_role("link", name="My conversations").click()
    assert page.locator("h1").inner_text() == "My conversations"
    page.get_by_role("link", name="Cara Diaz").click()
    items = page.locator("ol.thread > li").all_inner_texts()
    assert len(items) == 2
    assert items[0].startswith("Sent") and "Could you come on Monday?" in items[0]
    assert items[1].startswith("Received") and "Monday works for me." in items[1]
    screenshot(page, "conversation")

    add_user(web.bridge, 2001, "Ben Stone", "ben@example.test")
    conversation_url = page.url
    page.context.clear_cookies()
    sign_in(page, web, "ben@example.test")
    assert page.goto(conversation_url).status == 403
    page.goto(f"{web.base_url}/conversations")
    assert "Cara" not in page.locator("main").inner_text()


def test_admin_sees_all_conversations_and_filters(web: Served, page) -> None:  # noqa: ANN001
    add_user(web.bridge, 2001, "Ben Stone", "ben@example.test")
    for number, to in (("1042", "cara@example.org"), ("2001", "dan@example.org")):
        web.bridge.run("send", "--employee", number, "--to", to, "--subject", "Hello", "--body", "x")
    sign_in(page, web, "admin@example.test")
    page.goto(f"{web.base_url}/conversations")
    assert page.locator("h1").inner_text() == "All conversations"
    text = page.locator("main").inner_text()
    assert "cara@example.org" in text and "dan@example.org" in text
    page.get_by_label("Employee").select_option("2001")
    page.get_by_role("button", name="Show").click()
    assert re.search(r"Conversations of Ben Stone", page.locator("h1").inner_text())
    text = page.locator("main table").inner_text()
    assert "dan@example.org" in text and "cara@example.org" not in text
