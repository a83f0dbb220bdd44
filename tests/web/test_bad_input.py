"""Bad input gets a clear 4xx, never a 500, and changes nothing: control characters in a subject, ids
beyond what any table holds, and replying to a message whose subject and name hold line breaks."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from models import OutboundMessage
from tests.helpers.messages import reply
from tests.servers.web import Served, signed_in_client

TOO_LARGE = 2**63  # one past the largest id PostgreSQL's bigint and SQLite's integer hold
BREAKS = ["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\x00"]


def _token(web: Served) -> str:
    return web.bridge.run("token", "create", "ats", "--admin").stdout.strip()


@pytest.mark.parametrize("char", BREAKS, ids=[f"U+{ord(c):04X}" for c in BREAKS])
def test_an_api_subject_with_a_line_break_or_nul_is_422_and_queues_nothing(web_both: Served, char: str) -> None:
    with web_both.client(headers={"Authorization": f"Bearer {_token(web_both)}"}) as api:
        r = api.post("/api/v1/outbound", json={"employee_number": 1042, "to": "cand@example.org",
                                               "subject": f"Interview{char}Bcc: x@evil.example", "body": "Hello"})
    assert r.status_code == 422, r.text
    assert "subject" in r.text and "line break or control character" in r.text
    with Session(web_both.bridge.engine()) as s:
        assert s.exec(select(OutboundMessage)).all() == []


def test_ids_past_2_63_are_404_in_pages_and_api(web_both: Served) -> None:
    with web_both.client(headers={"Authorization": f"Bearer {_token(web_both)}"}) as api:
        assert api.get(f"/api/v1/messages/{TOO_LARGE}").status_code in (404, 422)
        assert api.post(f"/api/v1/outbound/{TOO_LARGE}/requeue").status_code in (404, 422)
    with signed_in_client(web_both, "admin@example.test") as (http, _csrf):
        for path in (f"/messages/{TOO_LARGE}", f"/conversations/{TOO_LARGE}", f"/admin/smtp/{TOO_LARGE}",
                     f"/admin/employees/{TOO_LARGE * 10}", f"/log/{TOO_LARGE}"):
            r = http.get(path)
            assert r.status_code == 404, (path, r.status_code)


def test_a_message_whose_subject_and_name_hold_line_breaks_can_be_answered(web: Served) -> None:
    b = web.bridge
    raw = reply("odd@example.org", "=?utf-8?b?Q2FuZAtKb25lcw==?= <cand@example.org>",  # "Cand\vJones"
                "jobs+1042@example.test",
                subject="Re: =?utf-8?b?TW9uZGF54oCoQmNjOiB4QGV2aWwuZXhhbXBsZQ==?=")  # "Monday\u2028Bcc: x@evil..."
    shown = json.loads(b.run("ingest", "-", "--json", stdin=raw).stdout)
    with signed_in_client(web, "ana@example.test") as (http, csrf):
        r = http.post(f"/messages/{shown['id']}/reply", data={"reply": "See you then.", "csrf_token": csrf})
    assert r.status_code == 303, r.text
    [entry] = [e for e in b.json("log") if e["purpose"] == "message"]  # (the other is the forward to Ana)
    assert entry["subject"] == "Re: Monday Bcc: x@evil.example" and entry["to"] == "cand@example.org"
    with Session(b.engine()) as s:
        sent = s.get(OutboundMessage, entry["id"]).raw
    assert b"\nBcc:" not in sent and b"Cand Jones" in sent


def test_wrong_tokens_are_throttled(web: Served) -> None:
    with web.client(headers={"Authorization": "Bearer rb_not-a-token"}) as api:
        codes = [api.get("/api/v1/messages").status_code for _ in range(30)]
        last = api.get("/api/v1/messages")
    assert codes[:20] == [401] * 20 and 429 in codes[20:], codes
    assert last.status_code == 429 and int(last.headers["Retry-After"]) >= 1
    with web.client(headers={"Authorization": f"Bearer {_token(web)}"}) as api:  # a valid token is not held up
        assert api.get("/api/v1/messages").status_code == 200


def test_a_body_over_10_mib_is_413_and_queues_nothing(web: Served) -> None:
    big = {"employee_number": 1042, "to": "cand@example.org", "subject": "Big", "body": "x" * (11 * 1024 * 1024)}
    with web.client(headers={"Authorization": f"Bearer {_token(web)}"}) as api:
        r = api.post("/api/v1/outbound", json=big)
        chunked = api.post("/api/v1/outbound", content=iter([json.dumps(big).encode()]),
                           headers={"Content-Type": "application/json"})
    assert (r.status_code, chunked.status_code) == (413, 413)
    assert web.bridge.json("log") == []
