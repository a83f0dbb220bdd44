"""The audit log (bridge/audit.py): the actions people take are recorded with who took them, through the
CLI, the pages and the API alike, never with a secret or a message's content; `replybridge audit` and
/admin/audit show them; an action that is refused records nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import getpass
import json

import httpx
import pytest

from tests.helpers.bridge import Bridge
from tests.helpers.inbound import ingest_json
from tests.helpers.messages import UNKNOWN, reply
from tests.servers.web import PASSWORD, Served, csrf_of, signed_in_client

SECRET = "Sm7p-Pa55word-n0t-in-the-log"


def audit(b: Bridge, *args: str) -> list[dict]:
    return b.json("audit", "--json", *args)


def test_commands_record_their_actions_with_the_user_who_ran_them(bridge: Bridge,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RB_PW", SECRET)
    bridge.run("smtp", "add", "office", "--host", "127.0.0.1", "--port", "2525", "--security", "none",
               "--username", "u", "--password-env", "RB_PW")
    bridge.run("alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana",
               "--from", "ana@example.test", "--smtp", "office")
    bridge.run("settings", "set", "portal_url", "https://ats.example.test")
    bridge.run("settings", "set", "portal_url", "https://ats.example.test")  # unchanged: not an action
    bridge.run("token", "create", "ats", "--admin")
    bridge.run("token", "revoke", "ats")
    bridge.run("employee", "set-password", "1042", "--password-stdin", stdin=SECRET + "\n")

    entries = audit(bridge)
    mine = f"command ({getpass.getuser()})"
    assert {e["actor"] for e in entries} == {mine}
    seen = [(e["action"], e["target"], e["detail"]) for e in reversed(entries)]
    for expected in [("account", "employee 1042", "added"), ("settings", "reply_address", None),
                     ("account", "smtp office", "added"), ("account", "alias Ana jobs", "added"),
                     ("settings", "portal_url", "set to 'https://ats.example.test'"),
                     ("token", "token ats", "created for every employee (admin)"), ("token", "token ats", "revoked"),
                     ("account", "employee 1042", "new password")]:
        assert any(a == expected[0] and t == expected[1] and (expected[2] is None or d == expected[2])
                   for a, t, d in seen), (expected, seen)
    assert sum(1 for a, t, _d in seen if t == "portal_url") == 1
    assert SECRET not in json.dumps(entries)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)  # newest first
    assert {e["action"] for e in audit(bridge, "--action", "token")} == {"token"}


def test_triage_by_command_is_recorded_and_a_refused_action_records_nothing(bridge: Bridge) -> None:
    first = ingest_json(bridge, reply("a1@cand.example", "cand@cand.example", UNKNOWN))
    second = ingest_json(bridge, reply("a2@cand.example", "other@cand.example", UNKNOWN, subject="Hello"))
    bridge.run("unassigned", "assign", str(first["id"]), "--employee", "1042")
    bridge.run("unassigned", "dismiss", str(second["id"]))
    before = audit(bridge)
    refused = bridge.run("unassigned", "dismiss", str(second["id"]), ok=False)
    assert refused.exit_code == 1
    bridge.run("smtp", "add", "box", "--host", "127.0.0.1", "--port", "2525", "--security", "none")
    bridge.run("alias", "add", "--employee", "1042", "--description", "Ana", "--display-name", "Ana",
               "--from", "ana@example.test", "--smtp", "box")
    assert bridge.run("smtp", "remove", "box", ok=False).exit_code == 1  # in use by the alias
    after = audit(bridge)
    assert [e for e in after if e["id"] > before[0]["id"] and e["action"] in ("dismiss", "account")
            and e["detail"] != "added"] == []  # the refused dismiss and the refused removal left nothing
    actions = {(e["action"], e["target"]) for e in after}
    assert ("assign", f"message {first['id']}") in actions and ("dismiss", f"message {second['id']}") in actions
    assign = next(e for e in after if e["action"] == "assign")
    assert assign["detail"] == "to employee 1042"
    assert "cand@cand.example" not in json.dumps(after) and "Interview" not in json.dumps(after)


def test_audit_command_refuses_bad_input(lite_bridge: Bridge) -> None:
    bad = lite_bridge.run("audit", "--since", "last tuesday", ok=False)
    assert bad.exit_code == 1 and "--since" in bad.stderr
    assert lite_bridge.run("audit", "--action", "nonsense", ok=False).exit_code == 2
    assert "employee 1042" in lite_bridge.run("audit").stdout
    assert lite_bridge.json("audit", "--json", "--since", "2999-01-01") == []


def test_pages_and_api_record_who_acted(web_both: Served, bridge: Bridge) -> None:
    served = web_both
    first = ingest_json(bridge, reply("w1@cand.example", "cand@cand.example", UNKNOWN))
    with served.client() as http:  # a wrong password: recorded against the address, no password kept
        r = http.post("/login", data={"email": "ana@example.test", "password": SECRET,
                                      "csrf_token": csrf_of(http.get("/login").text)})
        assert r.status_code == 401
    with signed_in_client(served, "admin@example.test") as (http, csrf):
        assert http.get(f"/messages/{first['id']}/raw").status_code == 200
        r = http.post(f"/messages/{first['id']}/assign", data={"employee_number": "1042", "csrf_token": csrf})
        assert r.status_code == 303
        r = http.post(f"/messages/{first['id']}/reply", data={"reply": "See you Monday.", "csrf_token": csrf})
        assert r.status_code == 303
        page = http.get("/admin/audit")
        assert page.status_code == 200 and "<h1>Audit log</h1>" in page.text
        assert "view raw" in page.text and "sign in failed" in page.text
        assert http.get("/admin/audit?action=sign_in").text.count('id="audit-') >= 1
        assert http.get("/admin/audit?action=<script>").status_code == 404
        assert http.post("/logout", data={"csrf_token": csrf}).status_code == 303
    with signed_in_client(served, "ana@example.test") as (http, _csrf):
        assert http.get("/admin/audit").status_code == 403
    token = bridge.run("token", "create", "ats", "--admin").stdout.strip()
    second = ingest_json(bridge, reply("w2@cand.example", "cand2@cand.example", UNKNOWN))
    r = httpx.post(f"{served.base_url}/api/v1/messages/{second['id']}/dismiss",
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text

    entries = audit(bridge)
    admin = "employee 1 (admin@example.test)"
    by = {(e["action"], e["target"]): e for e in entries}
    assert by[("view_raw", f"message {first['id']}")]["actor"] == admin
    assert by[("assign", f"message {first['id']}")]["actor"] == admin
    assert by[("send_reply", f"message {first['id']}")]["actor"] == admin
    assert by[("sign_in", "employee 1")]["actor"] == admin
    assert by[("sign_out", "employee 1")]["actor"] == admin
    assert by[("sign_in_failed", "email ana@example.test")]["actor"].startswith("address ")
    assert by[("dismiss", f"message {second['id']}")]["actor"] == "token ats (admin)"
    text = json.dumps(entries)
    assert SECRET not in text and PASSWORD not in text and "See you Monday" not in text
