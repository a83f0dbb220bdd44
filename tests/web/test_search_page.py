"""Search on the pages and in the API, in a real `serve` (SQLite and PostgreSQL) and Chromium: the box in
the navigation, the results with the matching words marked and message text shown inert, permissions,
paging, and bad searches refused."""

from __future__ import annotations

import re

import httpx

from tests.helpers.inbound import ingest_json
from tests.helpers.messages import KNOWN, reply
from tests.servers.web import Served, add_user, sign_in, signed_in_client


def _mail(web: Served) -> dict[str, int]:
    add_user(web.bridge, 2001, "Ben Stone", "ben@example.test")
    sent = {
        "subject": reply("s1@example.com", "Ana López <ana.lopez@example.com>", KNOWN, subject="Interview on Monday",
                         body="See you then.\r\n"),
        "body": reply("b1@firm.example", "bob@firm.example", KNOWN, subject="Re: Position",
                      body="Could the interview move to Tuesday?\r\n"),
        "unassigned": reply("u1@example.net", "stranger@example.net", "jobs@example.test",
                            subject="Question about an interview", body="Is it remote?\r\n"),
        "other": reply("o1@example.net", "dora@example.net", "jobs+2001@example.test", subject="Interview with Ben",
                       body="Fine.\r\n"),
        "script": reply("x1@example.net", "eve@example.net", KNOWN, subject="<script>alert(1)</script> interview",
                        body="<img src=x onerror=alert(2)> interview\r\n"),
    }
    return {name: ingest_json(web.bridge, raw)["id"] for name, raw in sent.items()}


def _linked(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'href="/messages/(\d+)"', html)}


def test_search_page_marks_words_and_keeps_to_what_the_employee_may_see(web_both: Served) -> None:
    m = _mail(web_both)
    with signed_in_client(web_both, "ana@example.test") as (http, _csrf):
        page = http.get("/search", params={"q": "interview"})
        assert page.status_code == 200
        assert page.text.count("<h1>") == 1 and "<h1>Search</h1>" in page.text
        assert _linked(page.text) == {m["subject"], m["body"], m["unassigned"], m["script"]}  # not Ben's
        assert "&lt;script&gt;alert(1)&lt;/script&gt; <mark>interview</mark>" in page.text
        assert "<script>alert" not in page.text and "<img" not in page.text
        assert "&lt;img src=x onerror=alert(2)&gt; <mark>interview</mark>" in page.text
        assert '<mark>Interview</mark> on Monday' in page.text
        # subject matches above the text-only match
        order = [int(i) for i in re.findall(r'href="/messages/(\d+)"', page.text)]
        assert order[-1] == m["body"]
        assert _linked(http.get("/search", params={"q": "dora"}).text) == set()
        for bad, why in (("", "type a word"), ("x" * 201, "at most 200 characters"), ("%%%", "type a word")):
            refused = http.get("/search", params={"q": bad})
            assert refused.status_code == 400 and why in refused.text, refused.text
        assert http.get("/search", params={"q": "interview", "page": "0"}).status_code == 400
    with signed_in_client(web_both, "admin@example.test") as (http, _csrf):
        assert m["other"] in _linked(http.get("/search", params={"q": "interview"}).text)
        assert _linked(http.get("/search", params={"q": "ana.lopez@example.com"}).text) == {m["subject"]}
    with httpx.Client(base_url=web_both.base_url) as anonymous:
        assert anonymous.get("/search", params={"q": "interview"}).status_code == 303  # sign in first


def test_api_searches_with_q_in_rank_order_and_pages(web_both: Served) -> None:
    m = _mail(web_both)
    recruiter = web_both.bridge.run("token", "create", "ana-script", "--employee", "1042").stdout.strip()
    admin = web_both.bridge.run("token", "create", "admin-script", "--admin").stdout.strip()
    with web_both.client(headers={"Authorization": f"Bearer {recruiter}"}) as api:
        got = api.get("/api/v1/messages", params={"q": "interview"}).json()
        found = [i["id"] for i in got["items"]]
        assert set(found) == {m["subject"], m["body"], m["unassigned"], m["script"]} and found[-1] == m["body"]
        assert got["next_cursor"] is None and got["items"][0]["subject"]
        pages, cursor = [], None
        while True:
            part = api.get("/api/v1/messages", params={"q": "interview", "limit": 1,
                                                       **({"cursor": cursor} if cursor else {})}).json()
            pages += [i["id"] for i in part["items"]]
            cursor = part["next_cursor"]
            if cursor is None:
                break
        assert pages == found
        only = api.get("/api/v1/messages", params={"q": "interview", "route": "unassigned"}).json()
        assert [i["id"] for i in only["items"]] == [m["unassigned"]]
        assert api.get("/api/v1/messages", params={"q": "interview", "employee": 2001}).status_code == 403
        for bad in ("", "!!", "x" * 201):
            refused = api.get("/api/v1/messages", params={"q": bad})
            assert refused.status_code == 422, refused.text
            assert refused.json()["detail"][0]["loc"] == ["query", "q"]
    with web_both.client(headers={"Authorization": f"Bearer {admin}"}) as api:
        got = api.get("/api/v1/messages", params={"q": "interview", "employee": 2001}).json()
        assert [i["id"] for i in got["items"]] == [m["other"]]
        schema = api.get("/api/v1/openapi.json").json()
        params = {p["name"] for p in schema["paths"]["/messages"]["get"]["parameters"]}
        assert "q" in params


def test_typing_into_the_search_box_shows_the_marked_result(web, page) -> None:  # noqa: ANN001 - fixtures
    [got] = [ingest_json(web.bridge, reply("r1@example.org", "Robin Vega <robin@example.org>", KNOWN,
                                           subject="Portfolio for the design role", body="Link inside.\r\n"))]
    sign_in(page, web, "ana@example.test")
    page.goto(f"{web.base_url}/log")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_label("Search").fill("robin portf")
    nav.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Search"
    link = page.get_by_role("link", name="Portfolio for the design role")
    assert link.get_attribute("href") == f"/messages/{got['id']}"
    assert page.locator("mark").all_inner_texts() == ["Robin", "robin", "Portfolio"]
    assert page.errors == []
