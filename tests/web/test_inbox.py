"""The Unassigned messages page in a real `serve` and Chromium: suggestions with their evidence, bulk
assign and dismiss, keyset paging, the dismissed view, CSRF, and candidate text shown as text."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.messages import reply
from tests.servers.web import Served, screenshot, sign_in, signed_in_client


def _ingest(web: Served, tmp_path: Path, messages: list[tuple[str, str, str]], to: str = "jobs@example.test") -> list:
    """Store and route (sender, subject, body) messages in one `ingest`; their inbound objects, in order."""
    files = []
    for sender, subject, body in messages:
        n = len(list(tmp_path.glob("in-*.eml")))
        path = tmp_path / f"in-{n}.eml"
        path.write_text(reply(f"in-{n}@mail.example", sender, to, subject, body=body), newline="")
        files.append(str(path))
    got = web.bridge.json("ingest", *files)
    return got if isinstance(got, list) else [got]


def _open_ids(web: Served) -> list[int]:
    return [m["id"] for m in web.bridge.json("unassigned", "list")]


def _rows(page) -> list[str]:  # noqa: ANN001 - playwright Page
    return page.locator("table.inbox tbody tr").all_inner_texts()


def _nav_count(page) -> int:  # noqa: ANN001
    label = page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(r"^Unassigned messages"))
    return int(re.search(r"\((\d+)\)", label.inner_text()).group(1))


def test_page_shows_the_suggestion_and_its_evidence(web: Served, page, tmp_path: Path) -> None:  # noqa: ANN001
    web.bridge.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Backend engineer",
                   "--body", "x")
    [got] = _ingest(web, tmp_path, [("Robin Vega <robin@example.org>", "Re: Backend engineer", "Still open?")])
    assert got["route"] == "unassigned"
    sign_in(page, web, "ana@example.test")
    page.goto(f"{web.base_url}/unassigned")
    assert page.locator("h1").inner_text() == "Unassigned messages"
    assert _nav_count(page) == 1
    row = page.locator("table.inbox tbody tr")
    assert row.count() == 1
    text = row.inner_text()
    assert "Robin Vega" in text and "robin@example.org" in text and "no rule matched" in text
    assert "Ana Ruiz (1042)" in text
    assert re.search(r'answers "Backend engineer" sent by Ana Ruiz on \d{4}-\d{2}-\d{2}', text)
    assert "same domain example.org as a candidate in conversations with Ana Ruiz" in text
    link = row.get_by_role("link", name="Re: Backend engineer")
    assert link.get_attribute("href") == f"/messages/{got['id']}"
    # the row's quick button assigns to the top suggestion
    row.get_by_role("button", name="Assign to suggested").click()
    page.wait_for_load_state()
    assert page.locator(".flash").inner_text() == "Assigned 1 message to Ana Ruiz (1042)."
    assert "No open unassigned messages" in page.locator("main").inner_text() and _nav_count(page) == 0
    assert web.bridge.json("messages", "list", "--employee", "1042")[0]["id"] == got["id"]
    assert page.errors == []


def test_bulk_assign_then_dismiss_in_the_browser(web: Served, page, tmp_path: Path) -> None:  # noqa: ANN001
    got = _ingest(web, tmp_path, [(f"person{n}@firm{n}.example", f"Hello {n}", "Hi") for n in range(5)])
    sign_in(page, web, "ana@example.test")
    page.goto(f"{web.base_url}/unassigned")
    assert _nav_count(page) == 5 and len(_rows(page)) == 5
    for m in got[:2]:
        page.get_by_label(f"Select the message from {m['from']}: {m['subject']}").check()
    page.get_by_label("Employee").select_option("1042")
    page.get_by_role("button", name="Assign selected").click()
    page.wait_for_load_state()
    assert page.locator(".flash").inner_text() == "Assigned 2 messages to Ana Ruiz (1042)."
    assert _nav_count(page) == 3 and len(_rows(page)) == 3
    assigned = {m["id"]: m["triage"] for m in web.bridge.json("messages", "list", "--employee", "1042")}
    assert assigned == {got[0]["id"]: "assigned", got[1]["id"]: "assigned"}

    page.locator("input[data-select-all=ids]").check()  # the header box ticks every row (app.js)
    assert page.locator("input[name=ids]:checked").count() == 3
    page.get_by_role("button", name="Dismiss selected").click()
    page.wait_for_load_state()
    assert page.locator(".flash").inner_text().startswith("Dismissed 3 messages.")
    assert _nav_count(page) == 0 and _open_ids(web) == []

    page.get_by_role("link", name="Dismissed messages").click()
    page.wait_for_load_state()
    assert page.url.endswith("/unassigned?view=dismissed")
    links = page.locator("table.inbox tbody a")
    assert sorted(links.evaluate_all("els => els.map(e => e.getAttribute('href'))")) == \
        sorted(f"/messages/{m['id']}" for m in got[2:])
    web.bridge.run("unassigned", "restore", str(got[3]["id"]))  # restorable: back in the open list
    page.goto(f"{web.base_url}/unassigned")
    assert _nav_count(page) == 1 and "Hello 3" in _rows(page)[0]
    assert page.errors == []


def test_paging_past_fifty_newest_first(web: Served, page, tmp_path: Path) -> None:  # noqa: ANN001
    got = _ingest(web, tmp_path, [(f"c{n}@batch.example", f"Message {n:02d}", "x") for n in range(55)])
    newest_first = [m["subject"] for m in sorted(got, key=lambda m: (m["received_at"], m["id"]), reverse=True)]
    sign_in(page, web, "ana@example.test")
    page.goto(f"{web.base_url}/unassigned")
    subjects = page.locator("table.inbox tbody tr td:nth-child(3) a").all_inner_texts()
    assert subjects == newest_first[:50] and _nav_count(page) == 55
    assert page.get_by_role("link", name="Newer").count() == 0
    page.get_by_role("link", name="Older").click()
    page.wait_for_load_state()
    assert "before=" in page.url
    assert page.locator("table.inbox tbody tr td:nth-child(3) a").all_inner_texts() == newest_first[50:]
    assert page.get_by_role("link", name="Older").count() == 0
    page.get_by_role("link", name="Newer").click()
    page.wait_for_load_state()
    assert page.locator("table.inbox tbody tr td:nth-child(3) a").all_inner_texts() == newest_first[:50]
    with signed_in_client(web, "ana@example.test") as (http, _token):  # a broken cursor is refused, not guessed at
        assert http.get("/unassigned?before=yesterday").status_code == 400


def test_refusals_change_nothing(web: Served, tmp_path: Path) -> None:
    got = _ingest(web, tmp_path, [(f"p{n}@firm.example", f"Hi {n}", "x") for n in range(3)])
    ids = [str(m["id"]) for m in got]
    with signed_in_client(web, "ana@example.test") as (http, token):
        r = http.post("/unassigned/bulk", data={"ids": ids[:2], "action": "assign", "employee": "1042"})
        assert r.status_code == 403 and "nothing was changed" in r.text  # no CSRF token
        r = http.post("/unassigned/bulk", data={"ids": ids[:2], "action": "assign", "employee": "",
                                                "csrf_token": token})
        assert r.status_code == 422 and "Choose the employee" in r.text
        assert r.text.count(" checked") == 2  # the selection is kept for the next try
        r = http.post("/unassigned/bulk", data={"action": "dismiss", "csrf_token": token})
        assert r.status_code == 422 and "Select at least one message" in r.text
        web.bridge.run("unassigned", "dismiss", ids[2])  # someone else was quicker with this one
        r = http.post("/unassigned/bulk", data={"ids": ids, "action": "assign", "employee": "1042",
                                                "csrf_token": token})
        assert r.status_code == 422 and f"message {ids[2]} is not an open unassigned message" in r.text
        assert sorted(_open_ids(web)) == sorted(int(i) for i in ids[:2])  # one transaction: none assigned
        r = http.post("/unassigned/bulk", data={"ids": ids[:2], "action": "assign", "employee": "1042",
                                                "csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/unassigned"
        assert "Assigned 2 messages to Ana Ruiz (1042)." in http.get("/unassigned").text
    assert _open_ids(web) == []


def test_candidate_text_is_shown_as_text(web: Served, page, tmp_path: Path) -> None:  # noqa: ANN001
    subject = '<script>alert("x")</script><img src=x onerror=alert(1)> Hello'
    blank, got = _ingest(web, tmp_path, [("quiet@mail.example", "", "x"),
                                         ('"<b>Eve</b>" <eve@evil.example>', subject, "x")])
    with signed_in_client(web, "ana@example.test") as (http, _token):
        html = http.get("/unassigned").text
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html and "<img src=x" not in html
    sign_in(page, web, "ana@example.test")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{web.base_url}/unassigned")
    assert page.locator(f"a[href='/messages/{got['id']}']").inner_text() == subject
    assert "<b>Eve</b>" in _rows(page)[0]
    assert page.locator(f"a[href='/messages/{blank['id']}']").inner_text() == "(no subject)"
    assert dialogs == [] and page.errors == []


def test_recruiter_view_for_the_readme(web: Served, page, tmp_path: Path) -> None:  # noqa: ANN001
    """A realistic morning's Unassigned messages: the README's picture."""
    run = web.bridge.run
    run("employee", "add", "--number", "2001", "--name", "Ben Okafor", "--email", "ben@example.test")
    run("employee", "add", "--number", "2002", "--name", "Chen Li", "--email", "chen@example.test")
    run("send", "--employee", "1042", "--to", "lena.hoffmann@posteo.de", "--subject", "Backend engineer (Python)",
        "--body", "x")
    run("send", "--employee", "2001", "--to", "j.smit@nordwind-logistik.example", "--subject",
        "Interview on Thursday", "--body", "x")
    run("send", "--employee", "2002", "--to", "sam.ortiz@brightlabs.example", "--subject", "Frontend developer role",
        "--body", "x")
    for number in ("1042", "2002"):
        run("send", "--employee", number, "--to", "noah.baker@uni-hamburg.example", "--subject",
            f"Working student position ({number})", "--body", "x")
    _ingest(web, tmp_path, [("Noah Baker <noah.baker@uni-hamburg.example>", "Question about the start date",
                             "Hello, could I start in March?")])
    _ingest(web, tmp_path, [("Priya Sharma <priya.sharma@gmail.com>", "Application: Data analyst", "Please find")],
            to="jobs+9999@example.test")
    _ingest(web, tmp_path, [("Sam Ortiz <sam.ortiz@outlook.com>", "Re: Frontend developer role",
                             "Writing from my private address")])
    _ingest(web, tmp_path, [("Marta Nowak <m.nowak@nordwind-logistik.example>", "AW: Interview on Thursday",
                             "My colleague forwarded your invitation")])
    _ingest(web, tmp_path, [("Tom Reyes <tom.reyes@brightlabs.example>", "Referral for the frontend team",
                             "Sam suggested I write")])
    _ingest(web, tmp_path, [("Jonas Weber <jonas.weber@web.de>", "Re: Backend engineer (Python)",
                             "Is the position still open?")])
    sign_in(page, web, "ana@example.test")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{web.base_url}/unassigned")
    assert len(_rows(page)) == 6 and _nav_count(page) == 6
    text = page.locator("main").inner_text()
    for expected in ("Ana Ruiz (1042)", "Ben Okafor (2001)", "Chen Li (2002)", "no employee number 9999"):
        assert expected in text
    screenshot(page, "unassigned")
