"""The message page in a real `serve` and Chromium: hostile candidate HTML, downloads, replies, triage, access.

The hostile message is aimed at a local HTTP recorder: any request it manages to make (script, frame,
CSS, tracking pixel, form, refresh) shows up there, so "nothing loaded" is measured, not assumed.
"""

from __future__ import annotations

import base64
import email
import email.policy
import http.server
import re
import smtplib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.dovecot import DOVECOT_BINARY, Dovecot
from tests.servers.web import Served, add_user, csrf_of, screenshot, sign_in, signed_in_client

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
                       "RU5ErkJggg==")  # 1x1


class Recorder:
    """A tiny HTTP server that answers everything with a 1x1 PNG and remembers every path asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                recorder.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)

            do_POST = do_GET  # noqa: N815 - a form post would land here too

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.stop()


def hostile(port: int) -> str:
    """Every trick a candidate's HTML might try, each aimed at the recorder."""
    base = f"http://127.0.0.1:{port}"
    html = f"""<html><head><meta http-equiv="refresh" content="0;url={base}/meta-refresh">
<base href="{base}/base/"><link rel="stylesheet" href="{base}/link.css">
<style>body {{ background: url({base}/css-tag) }} h1 {{ display: none }}</style></head>
<body onload="alert('onload')">
<script>alert('script')</script><script src="{base}/script.js"></script>
<p>Dear recruiter, <b>Monday</b> works for me.</p>
<img src="missing.png" onerror="alert('onerror')">
<a href="javascript:alert('link')">open javascript link</a>
<iframe src="{base}/frame"></iframe>
<div style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:99;background:url({base}/css-attr)">
Please sign in again</div>
<form action="{base}/form" method="post"><input name="password"><button>Log in</button></form>
<svg onload="alert('svg')"><image href="{base}/svg-image"/></svg>
<video src="{base}/video" autoplay></video><audio src="{base}/audio" autoplay></audio>
<object data="{base}/object"></object><embed src="{base}/embed">
<img src="{base}/track.png" alt="tracking pixel" width="1" height="1">
<img src="cid:logo@example.org" alt="inline logo">
</body></html>"""
    png = base64.b64encode(PNG).decode()
    return ("From: \"<b>Eve</b> Candidate\" <eve@example.org>\r\nTo: jobs@example.test\r\n"
            "Subject: Re: <b>HTML</b> & <script>alert('subject')</script>\r\nMessage-ID: <hostile-1@example.org>\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/related; boundary=\"R\"\r\n\r\n"
            f"--R\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
            "--R\r\nContent-Type: image/png\r\nContent-ID: <logo@example.org>\r\nContent-Transfer-Encoding: base64\r\n"
            f"\r\n{png}\r\n--R--\r\n")


def ingest(web: Served, raw: str | bytes, name: str = "in.eml") -> dict:
    path = Path(name).resolve()  # the bridge fixture runs in the test's tmp_path
    path.write_bytes(raw.encode() if isinstance(raw, str) else raw)
    return web.bridge.json("ingest", str(path))


def candidate(mid: str, to: str = "jobs@example.test", sender: str = "Cand <cand@example.org>",
              subject: str = "Re: Interview", extra: str = "", body: str = "Monday works for me.") -> str:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n")


def message(web: Served, inbound_id: int) -> dict:
    return next(m for m in web.bridge.json("messages", "list") if m["id"] == inbound_id)


def test_hostile_message_runs_nothing_and_loads_nothing_until_images_are_asked_for(
        web: Served, page, recorder: Recorder) -> None:  # noqa: ANN001
    stored = ingest(web, hostile(recorder.port))
    assert stored["route"] == "unassigned"
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda request: requests.append(request.url))
    sign_in(page, web, "ana@example.test")
    page.goto(f"{web.base_url}/messages/{stored['id']}")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(700)  # a refresh or a late script would have fired by now

    assert page.url == f"{web.base_url}/messages/{stored['id']}"
    assert dialogs == [] and page.errors == []
    assert recorder.paths == []
    assert [url for url in requests if not url.startswith(web.base_url + "/")] == []
    assert page.locator("h1").count() == 1
    assert page.locator("h1").inner_text() == "Re: <b>HTML</b> & <script>alert('subject')</script>"
    assert "<b>Eve</b> Candidate <eve@example.org>" in page.locator("dl.meta").inner_text()
    body = page.locator("div.message-html")
    assert "Monday works for me." in body.inner_text()
    bad = ("script, iframe, object, embed, svg, video, audio, form, input, style, link, meta, base, "
           "[style], [onload], [onerror], [href^='javascript']")
    assert body.locator(bad).count() == 0
    assert page.evaluate("document.querySelector('.message-html img[alt=\"inline logo\"]').naturalWidth") == 1
    assert page.get_by_text("Remote images are blocked").is_visible()
    screenshot(page, "message")

    page.get_by_role("button", name="Show images").click()
    page.wait_for_url(re.compile(r"images=1"))
    web.wait_for(lambda: recorder.paths, what="the tracking image after Show images")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    assert recorder.paths == ["/track.png"]
    assert dialogs == [] and page.errors == []
    assert page.locator("div.message-html").locator(bad).count() == 0


def test_attachment_downloads_are_never_pages(web: Served) -> None:
    raw = ("From: cand@example.org\r\nTo: jobs+1042@example.test\r\nSubject: CV\r\nMessage-ID: <cv-1@example.org>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n"
           "--M\r\nContent-Type: text/plain\r\n\r\nMy CV is attached.\r\n"
           "--M\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
           "filename*=UTF-8''Lebenslauf%20M%C3%BCller%20%22final%22.pdf\r\nContent-Transfer-Encoding: base64\r\n"
           "\r\nJVBERi0xLjQK\r\n"
           "--M\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename=\"page.html\"\r\n\r\n"
           "<script>alert(1)</script>\r\n"
           "--M\r\nContent-Type: image/svg+xml; name=\"logo.svg\"\r\n\r\n<svg onload=\"alert(1)\"/>\r\n--M--\r\n")
    stored = ingest(web, raw)
    assert stored["employee_number"] == 1042
    base = f"/messages/{stored['id']}/attachments"
    with signed_in_client(web, "ana@example.test") as (http, _token):
        page = http.get(f"/messages/{stored['id']}")
        assert page.status_code == 200
        for index, name in enumerate(('Lebenslauf Müller "final".pdf', "page.html", "logo.svg")):
            assert f'href="{base}/{index}">{name.replace(chr(34), "&#34;")}</a>' in page.text
        pdf = http.get(f"{base}/0")
        assert (pdf.status_code, pdf.content, pdf.headers["content-type"]) == (200, b"%PDF-1.4\n", "application/pdf")
        assert pdf.headers["content-disposition"] == (
            "attachment; filename=\"Lebenslauf M_ller _final_.pdf\"; "
            "filename*=UTF-8''Lebenslauf%20M%C3%BCller%20%22final%22.pdf")
        assert pdf.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in pdf.headers["content-security-policy"]
        for index in (1, 2):
            r = http.get(f"{base}/{index}")
            assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
            assert r.headers["content-disposition"].startswith("attachment;")
            assert b"alert(1)" in r.content
        assert http.get(f"{base}/3").status_code == 404
        assert http.get("/messages/999999").status_code == 404


@pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")
def test_reply_from_the_page_threads_and_is_filed(web: Served, page, smtp_peer, dovecot: Dovecot,  # noqa: ANN001
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    monkeypatch.setenv("IMAP_PW", dovecot.password)
    run = web.bridge.run
    run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none")
    run("imap", "add", "office-imap", "--host", "localhost", "--port", str(dovecot.ssl_port), "--security", "ssl",
        "--username", dovecot.user, "--password-env", "IMAP_PW", "--ca-file", str(dovecot.cafile))
    run("alias", "add", "--employee", "1042", "--description", "Ana - jobs", "--display-name", "Ana Ruiz",
        "--from", "ana@example.test", "--smtp", "office", "--imap", "office-imap", "--default")
    run("employee", "set-delivery", "1042", "none")  # the peer then sees our reply only
    stored = ingest(web, candidate("cand-1@example.org", to="jobs+1042@example.test",
                                   extra="References: <first@example.test>\r\n"))
    assert stored["employee_number"] == 1042

    sign_in(page, web, "ana@example.test")
    page.goto(f"{web.base_url}/messages/{stored['id']}")
    assert page.get_by_role("button", name="Assign").count() == 0  # routed: no triage
    page.get_by_role("button", name="Send reply").click()
    page.get_by_text("Write a reply first").wait_for()  # the 422 page, next to the field
    assert [e for e in web.bridge.json("log") if e["purpose"] == "message"] == []
    page.get_by_label("Reply").fill("Great, see you on Monday at 10.\nAna")
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_url(f"{web.base_url}/messages/{stored['id']}")
    flash = page.locator(".flash").inner_text()
    entry = web.bridge.json("log")[0]
    assert flash == f"Reply queued (Mail Log #{entry['id']})"

    web.wait_for(lambda: peer.received, what="the reply at the SMTP peer")
    sent = email.message_from_bytes(peer.received[0].data, policy=email.policy.default)
    assert sent["To"].addresses[0].addr_spec == "cand@example.org"
    assert sent["From"].addresses[0].addr_spec == "jobs+1042@example.test"
    assert (sent["Subject"], sent["In-Reply-To"]) == ("Re: Interview", "<cand-1@example.org>")
    assert sent["References"].split() == ["<first@example.test>", "<cand-1@example.org>"]
    assert sent.get_content().replace("\r\n", "\n").strip() == "Great, see you on Monday at 10.\nAna"
    web.wait_for(lambda: dovecot.folder_messages("Sent") == [peer.received[0].data], what="the reply in Sent")


def test_send_reply_lets_the_recruiter_choose_among_their_aliases(web: Served, page, smtp_peer) -> None:  # noqa: ANN001
    office, agency = smtp_peer("accept"), smtp_peer("accept")
    run = web.bridge.run
    run("smtp", "add", "office", "--host", office.host, "--port", str(office.port), "--security", "none")
    run("smtp", "add", "agency", "--host", agency.host, "--port", str(agency.port), "--security", "none")
    run("alias", "add", "--employee", "1042", "--description", "Ana - jobs", "--display-name", "Ana Ruiz",
        "--from", "ana@example.test", "--smtp", "office", "--default")
    run("alias", "add", "--employee", "1042", "--description", "Ana - agency", "--display-name", "Ana (Agency)",
        "--from", "ana@agency.example.test", "--smtp", "agency")
    run("employee", "set-delivery", "1042", "none")
    stored = ingest(web, candidate("cand-2@example.org", to="jobs+1042@example.test"))
    sign_in(page, web, "ana@example.test")
    page.goto(f"{web.base_url}/messages/{stored['id']}")
    choice = page.get_by_label("Send through")
    assert choice.input_value() == "Ana - jobs"  # the default first
    choice.select_option("Ana - agency")
    page.get_by_label("Reply").fill("Thank you.")
    page.get_by_role("button", name="Send reply").click()
    page.wait_for_url(f"{web.base_url}/messages/{stored['id']}")
    web.wait_for(lambda: agency.received, what="the reply through the chosen alias's account")
    sent = email.message_from_bytes(agency.received[0].data, policy=email.policy.default)
    assert sent["From"].addresses[0].display_name == "Ana (Agency)" and office.received == []
    with signed_in_client(web, "ana@example.test") as (http, token):  # an alias of someone else: refused, 422
        run("employee", "add", "--number", "7", "--name", "Bo", "--email", "bo@example.test")
        run("alias", "add", "--employee", "7", "--description", "Bo - jobs", "--display-name", "Bo",
            "--from", "bo@example.test")
        bad = http.post(f"/messages/{stored['id']}/reply", data={"csrf_token": token, "reply": "Hi",
                                                                 "alias": "Bo - jobs"})
        assert bad.status_code == 422 and "belongs to another employee" in bad.text


def test_assign_in_the_browser_routes_the_next_reply_and_dismiss_keeps(web: Served, page) -> None:  # noqa: ANN001
    first = ingest(web, candidate("u-1@example.org", sender="Carl <carl@example.org>"))
    other = ingest(web, candidate("u-2@example.org", sender="Dora <dora@example.org>"), name="other.eml")
    assert (first["route"], other["route"]) == ("unassigned", "unassigned")

    sign_in(page, web, "ana@example.test")
    page.goto(f"{web.base_url}/messages/{first['id']}")
    page.get_by_label("Employee").select_option(label="1042 Ana Ruiz")
    page.get_by_role("button", name="Assign").click()
    page.wait_for_url(f"{web.base_url}/unassigned")
    assert f"Message {first['id']} assigned to 1042 Ana Ruiz" in page.locator(".flash").inner_text()
    assigned = message(web, first["id"])
    assert (assigned["route"], assigned["employee_number"], assigned["triage"]) == ("employee", 1042, "assigned")

    with smtplib.SMTP("127.0.0.1", web.smtp_port, timeout=10) as smtp:  # Carl writes again, no thread headers
        smtp.sendmail("carl@example.org", ["jobs@example.test"],
                      candidate("u-3@example.org", sender="Carl <carl@example.org>", body="One more thing.").encode())
    again = web.wait_for(lambda: next((m for m in web.bridge.json("messages", "list")
                                       if m["message_id"] == "<u-3@example.org>" and m["route"]), None),
                         what="the next reply routed")
    assert (again["route"], again["employee_number"]) == ("employee", 1042)

    page.goto(f"{web.base_url}/messages/{other['id']}")
    page.get_by_role("button", name="Dismiss").click()
    page.wait_for_url(f"{web.base_url}/unassigned")
    dismissed = message(web, other["id"])
    assert (dismissed["route"], dismissed["triage"], dismissed["employee_number"]) == ("unassigned", "dismissed", None)
    page.goto(f"{web.base_url}/messages/{other['id']}")
    assert page.get_by_role("button", name="Assign").count() == 0
    page.get_by_role("button", name="Restore").click()
    page.get_by_text(f"Message {other['id']} is back in Unassigned messages").wait_for()
    assert page.url == f"{web.base_url}/messages/{other['id']}"
    assert message(web, other["id"])["triage"] == "open"
    assert page.get_by_role("button", name="Assign").is_visible()


def test_who_may_see_what(web: Served) -> None:
    add_user(web.bridge, 2001, "Bo Berg", "bo@example.test")
    theirs = ingest(web, candidate("bo-1@example.org", to="jobs+2001@example.test",
                                   extra="MIME-Version: 1.0\r\n"))
    assert theirs["employee_number"] == 2001
    unassigned = ingest(web, candidate("open-1@example.org"), name="open.eml")
    with signed_in_client(web, "ana@example.test") as (ana, _token):
        assert ana.get(f"/messages/{theirs['id']}").status_code == 403
        assert ana.get(f"/messages/{theirs['id']}/attachments/0").status_code == 403
        token = csrf_of(ana.get(f"/messages/{unassigned['id']}").text)
        r = ana.post(f"/messages/{theirs['id']}/reply", data={"reply": "hi", "csrf_token": token})
        assert r.status_code == 403
        assert ana.get(f"/messages/{unassigned['id']}/raw").status_code == 403
        page = ana.get(f"/messages/{unassigned['id']}")
        assert page.status_code == 200 and "Raw source" not in page.text
        assert "sent as 1042 Ana Ruiz" in page.text  # a recruiter answers unassigned mail as themselves
    assert [e for e in web.bridge.json("log") if e["purpose"] == "message"] == []
    with signed_in_client(web, "admin@example.test") as (admin, _token):
        page = admin.get(f"/messages/{theirs['id']}")
        assert page.status_code == 200 and "Raw source" in page.text
        assert "sent as 2001 Bo Berg" in page.text  # an admin answers as the message's recruiter
        raw = admin.get(f"/messages/{theirs['id']}/raw")
        assert raw.status_code == 200 and raw.headers["content-type"] == "text/plain; charset=utf-8"
        assert raw.headers["x-content-type-options"] == "nosniff"
        assert raw.content == candidate("bo-1@example.org", to="jobs+2001@example.test",
                                        extra="MIME-Version: 1.0\r\n").encode()
        assert admin.get("/messages/999999/raw").status_code == 404


def test_dismiss_without_csrf_token_is_refused(web: Served) -> None:
    stored = ingest(web, candidate("csrf-1@example.org"))
    with signed_in_client(web, "ana@example.test") as (ana, _token):
        r = ana.post(f"/messages/{stored['id']}/dismiss", data={})
        assert r.status_code == 403 and "nothing was changed" in r.text
        assert message(web, stored["id"])["triage"] == "open"
        token = csrf_of(ana.get(f"/messages/{stored['id']}").text)
        r = ana.post(f"/messages/{stored['id']}/dismiss", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/unassigned"
        assert message(web, stored["id"])["triage"] == "dismissed"


def test_bulk_send_page_previews_then_queues_every_row_and_shows_progress(web: Served, page, smtp_peer,  # noqa: ANN001
                                                                         tmp_path: Path) -> None:
    peer = smtp_peer("accept")
    web.bridge.run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none")
    web.bridge.run("alias", "add", "--employee", "1042", "--description", "Ana - jobs", "--display-name", "Ana Ruiz",
                   "--from", "ana@example.test", "--smtp", "office", "--delay-ms", "400")
    rows = ["email,name,job"] + [f"c{n}@example.org,Cand {n},Job {n}" for n in range(4)]
    good, bad = tmp_path / "people.csv", tmp_path / "bad.csv"
    good.write_text("\n".join(rows) + "\n")
    bad.write_text("email,name\nok@example.org,Ok\nnot an address,Bad\n")
    sign_in(page, web, "ana@example.test")
    page.get_by_role("link", name="Bulk send").click()
    page.get_by_label("Subject").fill("About {job}")
    page.get_by_label("Body").fill("Hello {name}, about {job}.")
    page.get_by_label("CSV file").set_input_files(str(bad))
    page.get_by_role("button", name="Preview").click()
    assert "line 3" in page.get_by_role("alert").inner_text()  # the bad row, named; nothing queued
    page.get_by_label("CSV file").set_input_files(str(good))
    page.get_by_role("button", name="Preview").click()
    previews = page.locator("article.preview")
    assert previews.count() == 3 and "c0@example.org" in previews.nth(0).inner_text()
    assert "Subject: About Job 0" in previews.nth(0).inner_text() and "Hello Cand 0, about Job 0." in \
        previews.nth(0).inner_text()
    assert "delay of 400 ms between emails, sending takes at least 1 s" in page.locator(".estimate").inner_text()
    assert web.bridge.json("log") == []  # a preview queues nothing
    page.get_by_role("button", name="Queue 4 messages").click()
    assert "Queued 4 messages" in page.locator(".flash").inner_text()
    page.get_by_text("nothing waits").wait_for(timeout=30_000)  # the page updated itself as they went out
    assert "4 of 4 done" in page.locator(".progress").inner_text()
    assert sorted(r.rcpt_tos[0] for r in peer.received) == [f"c{n}@example.org" for n in range(4)]
