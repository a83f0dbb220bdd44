"""The Postfix harness itself: two at once keep to their own queues, other domains are refused, and a stopped
instance leaves no process behind."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from tests.helpers.ports import closed_port
from tests.servers import postfix

pytestmark = pytest.mark.skipif(postfix.missing() is not None, reason=str(postfix.missing()))

DOMAIN = "reply.example"
MESSAGE = b"From: cand@example.org\r\nSubject: Re: Interview\r\nMessage-ID: <harness@example.org>\r\n\r\nMonday.\r\n"


def _group(server: postfix.Postfix) -> list[str]:
    """The live processes of the server's group (its master leads it), read from /proc (no `ps` needed). A
    dead one waiting for its new parent to collect it (state Z) runs no more."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        state, pgid = fields[0], int(fields[2])
        if pgid == server._process.pid and state != "Z":
            found.append(f"{stat.parent.name} {name}")
    return found


def test_two_at_once_each_with_its_own_queue_and_nothing_left_after_stop(tmp_path: Path) -> None:
    first = postfix.start_postfix(tmp_path / "a", DOMAIN, postfix.relay_to(closed_port()))
    second = postfix.start_postfix(tmp_path / "b", DOMAIN, postfix.relay_to(closed_port()))
    try:
        queued = [server.send(MESSAGE, "cand@example.org", [f"jobs+1042@{DOMAIN}"]) for server in (first, second)]
        for server, queue_id in zip((first, second), queued, strict=True):
            entry = server.wait_deferred(queue_id)
            assert "Connection refused" in entry["recipients"][0]["delay_reason"]
            assert [e["queue_id"] for e in server.queue()] == [queue_id]
        assert len(_group(first)) >= 3  # master, smtp's smtpd and qmgr at least
    finally:
        first.stop()
        second.stop()
    assert _group(first) == [] and _group(second) == []
    first.stop()  # a second stop is harmless


def test_other_domains_are_refused(tmp_path: Path) -> None:
    server = postfix.start_postfix(tmp_path / "pf", DOMAIN, postfix.relay_to(closed_port()))
    try:
        with smtplib.SMTP(postfix.HOST, server.port, timeout=10) as smtp:
            smtp.ehlo("sender.example.org")
            smtp.mail("cand@example.org")
            code, answer = smtp.rcpt("someone@example.net")
        assert code == 554 and b"Relay access denied" in answer
        assert server.queue() == []
    finally:
        server.stop()


def test_pipe_argv_and_environment_are_checked() -> None:
    with pytest.raises(ValueError, match="white space"):
        postfix.pipe_to(["/opt/my venv/bin/replybridge", "ingest", "-"], "nobody", {})
    with pytest.raises(ValueError, match="main.cf"):
        postfix.pipe_to(["/opt/replybridge/bin/replybridge", "ingest", "-"], "nobody", {"X": "pa$$word"})
    transport = postfix.pipe_to(["/opt/replybridge/bin/replybridge", "ingest", "-"], "replybridge",
                                {"REPLYBRIDGE_CONFIG": "/etc/replybridge/replybridge.toml"})
    assert transport.nexthop == "replybridge:"
    assert transport.master_cf == ("replybridge unix - n n - - pipe\n"
                                   "  flags=ORq user=replybridge argv=/opt/replybridge/bin/replybridge ingest -\n")
    assert ("export_environment = TZ MAIL_CONFIG LANG REPLYBRIDGE_CONFIG=/etc/replybridge/replybridge.toml\n"
            in transport.main_cf)
