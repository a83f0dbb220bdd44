"""`replybridge messages search`: the inbound objects in rank order, one line each as text, narrowed to one
employee; a bad search or an unknown employee is `error: ...` with exit 1 and changes nothing."""

from __future__ import annotations

from tests.helpers.bridge import Bridge
from tests.helpers.inbound import ingest_json
from tests.helpers.messages import KNOWN, reply


def test_search_prints_inbound_objects_best_first(bridge: Bridge) -> None:
    bridge.run("employee", "add", "--number", "2001", "--name", "Ben Stone", "--email", "ben@example.test")
    body = ingest_json(bridge, reply("b1@example.org", "bob@example.org", KNOWN, subject="Re: Position",
                                     body="The interview time suits me.\r\n"))
    subject = ingest_json(bridge, reply("s1@example.org", "ana@example.org", KNOWN, subject="Interview slot"))
    other = ingest_json(bridge, reply("o1@example.org", "dora@example.org", "jobs+2001@example.test",
                                      subject="Interview with Ben"))
    found = bridge.json("messages", "search", "interview")
    assert [m["id"] for m in found[-1:]] == [body["id"]]
    assert {m["id"] for m in found} == {body["id"], subject["id"], other["id"]}
    listed = {m["id"]: m for m in bridge.json("messages", "list")}
    assert all(m == listed[m["id"]] for m in found)  # the same objects as `messages list`
    assert [m["id"] for m in bridge.json("messages", "search", "interview", "--employee", "2001")] == [other["id"]]
    assert [m["id"] for m in bridge.json("messages", "search", "interview", "--limit", "1")] == [found[0]["id"]]
    text = bridge.run("messages", "search", "interview slot").stdout.splitlines()
    assert len(text) == 1 and text[0].startswith(f"#{subject['id']} ") and "'Interview slot'" in text[0]


def test_bad_searches_are_refused(bridge: Bridge) -> None:
    ingest_json(bridge, reply("s1@example.org", "ana@example.org", KNOWN, subject="Interview slot"))
    before = bridge.json("messages", "list")
    for args, why in ((("",), "type a word"), (("x" * 201,), "at most 200 characters"),
                      ((" ".join(f"w{i}" for i in range(21)),), "at most 20"),
                      (("slot", "--employee", "7"), "no employee number 7")):
        result = bridge.run("messages", "search", *args, ok=False)
        assert result.exit_code == 1 and result.stderr.startswith("error: ") and why in result.stderr, result.output
    assert bridge.json("messages", "list") == before
