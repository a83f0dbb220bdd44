"""The HTTP API (/api/v1) and its bearer tokens, over real HTTP against a real `serve`."""

from __future__ import annotations

import hashlib
import json
import shutil
import smtplib
import subprocess
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy

import httpx
import pytest
import uvicorn
from sqlalchemy import event, text

from bridge.web.api import create_api
from tests.helpers.bridge import Bridge
from tests.servers.web import Served, free_port

MIXED = ("From: Cand <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
         "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
         "Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
         "--XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
         "<p>Thanks, <b>Monday</b> works.</p><script>alert('x')</script>"
         "<img src=x onerror=\"alert('y')\"><a href=\"javascript:alert(1)\">link</a>\r\n"
         "--XX\r\nContent-Type: application/pdf; name=\"cv.pdf\"\r\nContent-Disposition: attachment; "
         "filename=\"cv.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQgdGVzdA==\r\n"
         "--XX\r\nContent-Type: text/html; name=\"page.html\"\r\nContent-Disposition: attachment; "
         "filename=\"page.html\"\r\n\r\n<script>alert(2)</script>\r\n--XX--\r\n")


def mail(mid: str, sender: str = "cand@example.org", to: str = "jobs@example.test", subject: str = "Hello",
         body: str = "Is the position still open?", extra: str = "") -> str:
    return (f"From: Cand <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n{extra}Content-Type: text/plain; charset=utf-8\r\n"
            f"\r\n{body}\r\n")


def ingest(b: Bridge, message: str) -> dict:
    return json.loads(b.run("ingest", "-", "--json", stdin=message).stdout)


def make_token(b: Bridge, name: str, *who: str) -> str:
    out = b.run("token", "create", name, *who).stdout
    assert out.count("\n") == 1 and out.startswith("rb_")  # the token alone, on one line
    return out.strip()


def client(web: Served, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"{web.base_url}/api/v1", headers=headers, timeout=15)


def smtp_send(web: Served, message: str, rcpt: str = "jobs@example.test") -> None:
    with smtplib.SMTP("127.0.0.1", web.smtp_port, timeout=10) as s:
        s.sendmail("cand@example.org", [rcpt], message.encode())


def field_of(r: httpx.Response) -> list[list]:
    assert r.status_code == 422, r.text
    return [e["loc"] for e in r.json()["detail"]]


# --- tokens -------------------------------------------------------------------------------------

def test_tokens_are_shown_once_stored_hashed_listed_and_revoked(web: Served) -> None:
    b = web.bridge
    admin = make_token(b, "ats", "--admin")
    ana = make_token(b, "ana-script", "--employee", "1042")
    assert admin != ana and len(admin) > 40
    with b.engine().connect() as conn:
        stored = conn.execute(text("SELECT name, token_hash, employee_id, admin FROM api_token ORDER BY name")).all()
    assert [(r.name, r.token_hash, r.admin) for r in stored] == [
        ("ana-script", hashlib.sha256(ana.encode()).hexdigest(), False),
        ("ats", hashlib.sha256(admin.encode()).hexdigest(), True)]
    listed = b.run("token", "list").stdout + b.run("token", "list", "--json").stdout
    assert admin not in listed and ana not in listed and stored[0].token_hash not in listed
    rows = b.json("token", "list")
    assert [(r["name"], r["admin"], r["employee_number"], r["last_used_at"]) for r in rows] == [
        ("ana-script", False, 1042, None), ("ats", True, None, None)]

    for args, says in ((("ats", "--admin"), "exists already"), (("x",), "exactly one"),
                       (("x", "--admin", "--employee", "1042"), "exactly one"),
                       (("x", "--employee", "77"), "no employee number 77")):
        r = b.run("token", "create", *args, ok=False)
        assert r.exit_code != 0 and says in r.output + r.stderr and not r.stdout.startswith("rb_")

    with client(web, ana) as http:
        assert http.get("/messages").status_code == 200
    assert b.json("token", "list")[0]["last_used_at"] is not None
    b.run("token", "revoke", "ana-script")
    with client(web, ana) as http:
        assert http.get("/messages").status_code == 401
    r = b.run("token", "revoke", "ana-script", ok=False)
    assert r.exit_code == 1 and "no token named" in r.stderr
    assert [r["name"] for r in b.json("token", "list")] == ["ats"]


def test_without_a_valid_token_everything_is_401(web: Served) -> None:
    b = web.bridge
    b.run("employee", "add", "--number", "7", "--name", "Bo", "--email", "bo@example.test")
    bo = make_token(b, "bo", "--employee", "7")
    admin = make_token(b, "ats", "--admin")
    b.run("employee", "deactivate", "7")
    attempts = [
        (None, "GET", "/messages", None), ("rb_not-a-token", "GET", "/messages", None),
        (admin[:-2], "GET", "/outbound", None), (bo, "GET", "/messages", None),  # inactive employee
        (None, "GET", "/messages/1", None), (None, "GET", "/messages/1/attachments/0", None),
        (None, "POST", "/messages/1/assign", {"employee_number": 1042}), (None, "POST", "/messages/1/dismiss", None),
        (None, "POST", "/outbound", {"employee_number": 1042}), (None, "POST", "/outbound/1/requeue", None),
        (None, "GET", "/no/such/path", None), (None, "DELETE", "/messages", None),
        (None, "GET", "/messages?limit=0", None),  # a bad query is not looked at before the token
    ]
    for token, method, path, body in attempts:
        with client(web, token) as http:
            r = http.request(method, path, json=body)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert isinstance(r.json()["detail"], str)
    with httpx.Client(base_url=web.base_url) as http:
        basic = http.get("/api/v1/messages", headers={"Authorization": "Basic YWRtaW46eA=="})
        assert basic.status_code == 401
        broken = http.post("/api/v1/outbound", content=b"{not json", headers={"Content-Type": "application/json"})
        assert broken.status_code == 401
        assert http.get("/api/v1/openapi.json").status_code == 200  # the documentation is public
    with client(web, admin) as http:
        assert http.get("/no/such/path").status_code == 404  # with a token: the honest answer


def test_403_outside_the_tokens_employee_404_unknown_ids_422_names_the_field(web: Served) -> None:
    b = web.bridge
    b.run("employee", "add", "--number", "7", "--name", "Bo", "--email", "bo@example.test")
    bos = ingest(b, mail("bo1@example.org", to="jobs+7@example.test"))
    assert (bos["route"], bos["employee_number"]) == ("employee", 7)
    open_one = ingest(b, mail("open1@example.org"))
    b.run("send", "--employee", "7", "--to", "cand@example.org", "--subject", "Hi", "--body", "Hello")
    bo_mail = b.json("log")[0]
    ana = make_token(b, "ana", "--employee", "1042")
    with client(web, ana) as http:
        for method, path, body in (("GET", f"/messages/{bos['id']}", None),
                                   ("GET", f"/messages/{bos['id']}/attachments/0", None),
                                   ("POST", f"/messages/{bos['id']}/assign", {"employee_number": 1042}),
                                   ("POST", f"/messages/{bos['id']}/dismiss", None),
                                   ("GET", "/messages?employee=7", None),
                                   ("POST", "/outbound", {"employee_number": 7, "to": "c@example.org",
                                                          "subject": "s", "body": "b"}),
                                   ("POST", "/outbound", {"employee_number": 1042, "to": "c@example.org",
                                                          "subject": "s", "body": "b", "in_reply_to": bos["id"]}),
                                   ("POST", f"/outbound/{bo_mail['id']}/requeue", None)):
            r = http.request(method, path, json=body)
            assert r.status_code == 403, (method, path, r.text)
            assert isinstance(r.json()["detail"], str)
        # Ana sees her own and the Unassigned ones, never Bo's
        assert [m["id"] for m in http.get("/messages").json()["items"]] == [open_one["id"]]
        assert http.get("/outbound").json()["items"] == []
        assert http.get(f"/messages/{open_one['id']}").status_code == 200

        r = http.get("/messages/999999")
        assert r.status_code == 404 and r.json() == {"detail": "no inbound message 999999"}
        assert http.post("/outbound/999999/requeue").status_code == 404
        assert http.get(f"/messages/{open_one['id']}/attachments/3").status_code == 404

        assert field_of(http.get("/messages?limit=0")) == [["query", "limit"]]
        assert field_of(http.get("/messages?limit=201")) == [["query", "limit"]]
        assert field_of(http.get("/messages?route=nowhere")) == [["query", "route"]]
        assert field_of(http.get("/messages?cursor=%%%")) == [["query", "cursor"]]
        assert field_of(http.get("/messages?cursor=eyJ4IjoxfQ")) == [["query", "cursor"]]  # {"x":1}
        assert field_of(http.get("/outbound?cursor=bm9wZQ")) == [["query", "cursor"]]
        assert field_of(http.get("/outbound?status=lost")) == [["query", "status"]]
        send = {"employee_number": 1042, "to": "cand@example.org", "subject": "Interview", "body": "Hello"}
        assert ["body", "to"] in field_of(http.post("/outbound", json={**send, "to": None}))
        assert field_of(http.post("/outbound", json={**send, "to": "not an address"})) == [["body", "to"]]
        assert field_of(http.post("/outbound", json={**send, "subject": "Hi\r\nBcc: x@evil.test"})) == \
            [["body", "subject"]]
        assert field_of(http.post("/outbound", json={**send, "alias": "nobody's"})) == [["body", "alias"]]
        assert field_of(http.post("/outbound", json={**send, "in_reply_to": 999999})) == [["body", "in_reply_to"]]
        both = http.post("/outbound", json={**send, "html": "<p>x</p>"})
        assert field_of(both) == [["body"]] and "exactly one of body" in both.json()["detail"][0]["msg"]
        assert ["body", "text"] in field_of(http.post("/outbound", json={**send, "text": "typo'd field"}))
        r = http.post(f"/messages/{open_one['id']}/assign", json={"employee_number": 55})
        assert field_of(r) == [["body", "employee_number"]] and "no employee number 55" in r.text
        assert field_of(http.post(f"/messages/{open_one['id']}/assign", json={})) == [["body", "employee_number"]]
        assert field_of(http.get("/messages/abc")) == [["path", "message_id"]]
    assert b.json("log")[0]["id"] == bo_mail["id"]  # none of the refused sends was queued


def test_curl_readme_example(web: Served) -> None:
    admin = make_token(web.bridge, "ats", "--admin")
    one = ingest(web.bridge, mail("curl1@example.org"))
    url = f"{web.base_url}/api/v1/messages?route=unassigned"
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-s", "-H", f"Authorization: Bearer {admin}", url], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    else:  # the same request without curl
        out = httpx.get(url, headers={"Authorization": f"Bearer {admin}"}).text
    assert [m["id"] for m in json.loads(out)["items"]] == [one["id"]]


# --- listing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [3])
def test_listing_pages_newest_first_with_a_cursor(web_both: Served, limit: int) -> None:
    web = web_both
    b = web.bridge
    b.run("employee", "add", "--number", "7", "--name", "Bo", "--email", "bo@example.test")
    unassigned = [ingest(b, mail(f"u{i}@example.org", sender=f"c{i}@example.org"))["id"] for i in range(7)]
    ana_own = ingest(b, mail("a1@example.org", to="jobs+1042@example.test"))["id"]  # forwarded: not_sent
    bos = ingest(b, mail("b1@example.org", to="jobs+7@example.test"))["id"]
    dismissed = unassigned.pop(2)
    b.run("unassigned", "dismiss", str(dismissed))
    admin, ana = make_token(b, "ats", "--admin"), make_token(b, "ana", "--employee", "1042")
    tied = unassigned[2:5]  # three arrivals in the same microsecond, across a page boundary: id decides
    with b.engine().begin() as conn:
        conn.execute(text("UPDATE inbound_message SET received_at = (SELECT received_at FROM inbound_message "
                          f"WHERE id = {tied[1]}) WHERE id IN ({', '.join(map(str, tied))})"))

    def walk(token: str, **query: object) -> list[list[int]]:
        pages, cursor = [], None
        with client(web, token) as http:
            while True:
                r = http.get("/messages", params={**query, "limit": limit, **({"cursor": cursor} if cursor else {})})
                assert r.status_code == 200, r.text
                pages.append([m["id"] for m in r.json()["items"]])
                cursor = r.json()["next_cursor"]
                if cursor is None:
                    return pages
                assert len(pages) < 10

    def pages(ids: list[int]) -> list[list[int]]:  # ingested one after another: ids follow received_at
        ids = sorted(ids, reverse=True)
        return [ids[i:i + limit] for i in range(0, len(ids), limit)]

    assert walk(admin, route="unassigned") == pages(unassigned)  # open ones only: 6, in two full pages
    assert walk(admin) == pages([*unassigned, dismissed, ana_own, bos])
    assert walk(ana) == pages([*unassigned, dismissed, ana_own])  # not Bo's
    assert walk(admin, employee=7) == [[bos]]
    assert walk(ana, route="employee") == [[ana_own]]
    assert walk(ana, employee=1042) == [[ana_own]]

    # the objects are the CLI's, key for key (the list builds them in one query per table)
    with client(web, admin) as http:
        listed = http.get("/messages", params={"limit": 200}).json()["items"]
    cli = b.json("messages", "list")
    assert listed == cli
    assert {m["delivery"] for m in listed if m["id"] == ana_own} == {"forward not_sent"}


def test_a_page_costs_the_same_queries_for_2_rows_as_for_40(lite_bridge: Bridge) -> None:
    b = lite_bridge
    for i in range(20):
        ingest(b, mail(f"q{i}@example.org", sender=f"q{i}@example.org"))
        ingest(b, mail(f"r{i}@example.org", sender=f"r{i}@example.org", to="jobs+1042@example.test"))
    b.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi", "--body", "Hello")
    token = make_token(b, "ats", "--admin")
    engine = b.engine()
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    server = uvicorn.Server(uvicorn.Config(create_api(engine), host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.config.port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        http.get("/messages")  # the token's first use writes last_used_at: not part of a page's cost
        costs = {}
        for path in ("/messages", "/outbound"):
            for limit in (2, 40):
                statements.clear()
                r = http.get(path, params={"limit": limit})
                assert r.status_code == 200 and len(r.json()["items"]) == min(limit, 21 if path == "/outbound" else 40)
                costs[path, limit] = len(statements)
    server.should_exit = True
    thread.join(10)
    # token, page, then one query per related table (employees, candidates, forwards), never one per row
    assert costs["/messages", 2] <= costs["/messages", 40] <= 5, costs
    assert costs["/outbound", 2] == costs["/outbound", 40] <= 3, costs


# --- triage -------------------------------------------------------------------------------------

def test_assign_then_the_next_reply_goes_to_that_employee_and_dismiss(web_both: Served) -> None:
    web = web_both
    ana = make_token(web.bridge, "ana", "--employee", "1042")
    with client(web, ana) as http:
        def unassigned() -> list[dict]:
            return http.get("/messages", params={"route": "unassigned"}).json()["items"]

        smtp_send(web, mail("first@example.org", sender="newcand@example.org", subject="Application"))
        smtp_send(web, mail("spam@example.org", sender="spam@example.org", subject="Offer"))
        first, spam = sorted(web.wait_for(lambda: len(unassigned()) == 2 and unassigned(), what="two unassigned"),
                             key=lambda m: m["id"])
        assert first["from"] == "newcand@example.org" and first["triage"] == "open"

        r = http.post(f"/messages/{first['id']}/assign", json={"employee_number": 1042})
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["route"], got["employee_number"], got["triage"], got["candidate"]) == \
            ("employee", 1042, "assigned", "newcand@example.org")
        again = http.post(f"/messages/{first['id']}/assign", json={"employee_number": 1042})
        assert again.status_code == 409 and "not an open unassigned message (assigned)" in again.json()["detail"]

        r = http.post(f"/messages/{spam['id']}/dismiss")
        assert r.status_code == 200 and r.json()["triage"] == "dismissed"
        assert http.post(f"/messages/{spam['id']}/dismiss").status_code == 409
        assert unassigned() == []

        # the candidate writes again, no thread headers: the assignment made them Ana's candidate
        smtp_send(web, mail("second@example.org", sender="newcand@example.org", subject="One more thing"))

        def second() -> dict | None:
            items = http.get("/messages", params={"employee": 1042}).json()["items"]
            return next((m for m in items if m["message_id"] == "<second@example.org>"), None)
        routed = web.wait_for(second, what="the second reply routed")
        assert (routed["route"], routed["employee_number"], routed["rule"]) == ("employee", 1042, "known_sender")
        assert web.bridge.json("messages", "list")[0]["employee_number"] == 1042


# --- outbound -----------------------------------------------------------------------------------

def test_outbound_is_queued_202_sent_through_the_peer_and_requeued(web_both: Served, smtp_peer) -> None:  # noqa: ANN001
    web = web_both
    b = web.bridge
    peer = smtp_peer("accept")
    answered = ingest(b, mail("ask@example.org", sender="cand@example.org", to="jobs+1042@example.test",
                              subject="Question", extra="References: <older@example.org>\r\n"))
    ana = make_token(b, "ana", "--employee", "1042")
    with client(web, ana) as http:
        # no SMTP account yet: queued all the same, logged as not_sent with the reason
        r = http.post("/outbound", json={"employee_number": 1042, "to": "cand@example.org", "subject": "Interview",
                                         "body": "Monday 10:00?"})
        assert r.status_code == 202, r.text
        early = r.json()
        assert (early["status"], early["to"], early["employee_number"]) == ("not_sent", "cand@example.org", 1042)
        assert early["message_id"].startswith("<")

        b.run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none",
              "--default")
        r = http.post("/outbound", json={"employee_number": 1042, "to": "cand@example.org", "subject": "Re: Question",
                                         "html": "<p>Yes, <b>it is</b>.</p>", "in_reply_to": answered["id"]})
        assert r.status_code == 202 and r.json()["status"] == "queued"
        reply = r.json()

        def status_of(mail_id: int) -> str:
            items = http.get("/outbound").json()["items"]
            return next(m["status"] for m in items if m["id"] == mail_id)

        web.wait_for(lambda: status_of(reply["id"]) == "sent", what="the reply sent")
        sent = message_from_bytes(peer.received[0].data, policy=default_policy)
        assert sent["In-Reply-To"] == "<ask@example.org>"
        assert sent["References"].split() == ["<older@example.org>", "<ask@example.org>"]
        assert sent["Message-ID"] == reply["message_id"] and peer.received[0].rcpt_tos == ["cand@example.org"]

        busy = http.post(f"/outbound/{reply['id']}/requeue")
        assert busy.status_code == 409 and "only not_sent and undeliverable" in busy.json()["detail"]
        r = http.post(f"/outbound/{early['id']}/requeue")
        assert r.status_code == 200 and r.json()["status"] == "queued" and r.json()["id"] == early["id"]
        web.wait_for(lambda: status_of(early["id"]) == "sent", what="the requeued message sent")
        assert len(peer.received) == 2

        assert [m["id"] for m in http.get("/outbound", params={"status": "sent"}).json()["items"]] == \
            [reply["id"], early["id"]]
        first = http.get("/outbound", params={"limit": 1}).json()
        rest = http.get("/outbound", params={"limit": 1, "cursor": first["next_cursor"]}).json()
        assert [m["id"] for m in first["items"] + rest["items"]] == [reply["id"], early["id"]]
        not_sent = http.get("/outbound", params={"status": "not_sent"}).json()["items"]
        assert early["id"] not in [m["id"] for m in not_sent]
        # the objects are the CLI's (the forward of the inbound message to Ana is hers too)
        assert http.get("/outbound").json()["items"] == [m for m in b.json("log") if m["employee_number"] == 1042]


# --- one message --------------------------------------------------------------------------------

def test_message_body_html_is_sanitized_and_attachments_download(web: Served) -> None:
    b = web.bridge
    row = ingest(b, MIXED.format(sender="cand@example.org", to="jobs+1042@example.test", subject="My CV",
                                 mid="cv@example.org"))
    ana = make_token(b, "ana", "--employee", "1042")
    with client(web, ana) as http:
        r = http.get(f"/messages/{row['id']}")
        assert r.status_code == 200, r.text
        got = r.json()
        assert {k: got[k] for k in row if k != "duplicate"} == {k: v for k, v in row.items() if k != "duplicate"}
        html = got["body_html"]
        assert "<b>Monday</b>" in html
        for bad in ("<script", "alert", "onerror", "javascript:"):
            assert bad not in html.lower(), html
        assert "Monday works" in got["text"] and "Monday works" in got["body_text"]
        names = [(a["name"], a["content_type"], a["size"]) for a in got["attachments"]]
        assert names == [("cv.pdf", "application/pdf", 13), ("page.html", "text/html", 25)]

        pdf = http.get(got["attachments"][0]["url"])
        assert pdf.status_code == 200 and pdf.content == b"%PDF-1.4 test"
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"] == "attachment; filename*=UTF-8''cv.pdf"
        assert pdf.headers["x-content-type-options"] == "nosniff"
        page = http.get(got["attachments"][1]["url"])
        assert page.headers["content-type"] == "application/octet-stream"  # never rendered as a page of ours
        assert page.headers["content-disposition"].startswith("attachment;")
    with httpx.Client() as anonymous:
        assert anonymous.get(got["attachments"][0]["url"]).status_code == 401


def test_openapi_documents_every_route_the_bearer_scheme_and_the_errors(web: Served) -> None:
    doc = httpx.get(f"{web.base_url}/api/v1/openapi.json").json()
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer") and "token create" in scheme["description"]
    routes = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert routes == {("GET", "/messages"), ("GET", "/messages/{message_id}"),
                      ("GET", "/messages/{message_id}/attachments/{index}"), ("POST", "/messages/{message_id}/assign"),
                      ("POST", "/messages/{message_id}/dismiss"), ("POST", "/outbound"), ("GET", "/outbound"),
                      ("POST", "/outbound/{outbound_id}/requeue"), ("DELETE", "/candidates/{address}"),
                      ("GET", "/candidates/{address}/export")}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["security"] == [{"bearer": []}], (method, path)
            codes = set(op["responses"])
            assert {"401", "403", "422"} <= codes, (method, path, codes)
            if "_id}" in path:  # an unknown id is 404; an address with nothing stored is an empty answer
                assert "404" in codes, (method, path, codes)
    send = doc["paths"]["/outbound"]["post"]
    assert "202" in send["responses"]
    body = doc["components"]["schemas"]["OutboundIn"]["properties"]
    assert {"employee_number", "alias", "to", "subject", "body", "html", "in_reply_to"} == set(body)
    inbound = doc["components"]["schemas"]["Inbound"]["properties"]
    assert {"from", "route", "employee_number", "candidate"} <= set(inbound)
