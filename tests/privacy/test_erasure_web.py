"""Erasure and export over HTTP, against a real `serve`: the API (admin tokens only, 422 for a bad address,
the counts and the zip) and the admin page (Find shows the dry run, Erase after the confirmation, Export
downloads), admins only."""

from __future__ import annotations

import io
import json
import zipfile

import httpx

from tests.helpers.bridge import Bridge
from tests.servers.web import Served, csrf_of, sign_in, signed_in_client

MAIL = ("From: Lena <lena.quist@cand.example>\r\nTo: jobs+1042@example.test\r\nSubject: Zephyrquartz\r\n"
        "Message-ID: <w1@cand.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nXylomarble.\r\n")


def api(web: Served, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{web.base_url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=15)


def test_api_erases_and_exports_for_admin_tokens_only(lite_bridge: Bridge, web: Served) -> None:
    lite_bridge.run("ingest", "-", stdin=MAIL)
    admin = lite_bridge.run("token", "create", "ats", "--admin").stdout.strip()
    recruiter = lite_bridge.run("token", "create", "ana", "--employee", "1042").stdout.strip()
    with api(web, recruiter) as http:
        assert http.delete("/candidates/lena.quist@cand.example").status_code == 403
        assert http.get("/candidates/lena.quist@cand.example/export").status_code == 403
    with api(web, admin) as http:
        bad = http.delete("/candidates/not-an-address")
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "address"]
        dry = http.delete("/candidates/Lena.Quist@cand.example", params={"dry_run": "true"})
        assert dry.status_code == 200 and dry.json()["counts"]["inbound"] == 1 and dry.json()["receipt_id"] is None
        got = http.get("/candidates/lena.quist@cand.example/export")
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        assert b"Xylomarble" in zipfile.ZipFile(io.BytesIO(got.content)).read("messages.mbox")
        done = http.delete("/candidates/lena.quist@cand.example")
        assert done.status_code == 200 and done.json()["counts"]["inbound"] == 1 and done.json()["receipt_id"]
        schema = http.get("/openapi.json").json()
        assert "delete" in schema["paths"]["/candidates/{address}"]
    assert lite_bridge.json("messages", "list") == []


def test_admin_page_finds_then_erases_and_recruiters_are_refused(lite_bridge: Bridge, web: Served,
                                                                  page) -> None:  # noqa: ANN001
    lite_bridge.run("ingest", "-", stdin=MAIL)
    with signed_in_client(web, "ana@example.test") as (http, _csrf):
        assert http.get("/admin/candidates").status_code == 403
    with signed_in_client(web, "admin@example.test") as (http, _csrf):
        form = csrf_of(http.get("/admin/candidates").text)
        bad = http.post("/admin/candidates/find", data={"address": "nope", "csrf_token": form})
        assert bad.status_code == 422 and "not an e-mail address" in bad.text
        got = http.post("/admin/candidates/export", data={"address": "lena.quist@cand.example", "csrf_token": form})
        assert got.status_code == 200 and "candidate.json" in zipfile.ZipFile(io.BytesIO(got.content)).namelist()
        no_csrf = http.post("/admin/candidates/erase", data={"address": "lena.quist@cand.example"})
        assert no_csrf.status_code == 403
    assert len(lite_bridge.json("messages", "list")) == 1

    sign_in(page, web, "admin@example.test")
    page.get_by_role("link", name="Candidates").click()
    page.get_by_label("Address").fill("lena.quist@cand.example")
    page.get_by_role("button", name="Find").click()
    page.wait_for_load_state()
    assert page.get_by_role("row", name="Received messages 1").count() == 1
    assert page.get_by_label("Also delete the copies in IMAP folders").is_checked() is False
    page.get_by_role("button", name="Erase").click()
    page.wait_for_load_state()
    assert "Erased 2 records (receipt 1)" in page.get_by_role("status").inner_text()
    assert lite_bridge.json("messages", "list") == []
    assert json.loads(lite_bridge.run("audit", "--json").stdout)[0]["action"] == "erase"
