"""Poison mail: a message that cannot be read, or whose routing keeps failing, lands in Unassigned with the
reason, its raw bytes exact, and never holds up the messages after it (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from bridge.inbound import limits, pipeline, raw_store
from bridge.inbound.message_content import content_of
from bridge.inbound.smtp_receiver import Receiver, ReceiverConfig
from models import InboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.messages import reply
from tests.helpers.ports import free_port

HEAD = ("From: Dave <dave@cand.example.org>\r\nTo: jobs+1042@example.test\r\nSubject: {subject}\r\n"
        "Message-ID: <{mid}@cand.example.org>\r\nMIME-Version: 1.0\r\n")


def nested(depth: int) -> bytes:
    """`depth` multipart/mixed sections, each inside the one before: 68 KB at 1,000."""
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    closing = "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    body = opening + "Content-Type: text/plain\r\n\r\nhello\r\n" + closing
    return (HEAD.format(subject="deep", mid=f"deep{depth}") + body).encode()


def wide(parts: int) -> bytes:
    """One multipart with `parts` empty parts: 1.4 MB at 200,000."""
    head = HEAD.format(subject="wide", mid=f"wide{parts}") + 'Content-Type: multipart/mixed; boundary="w"\r\n\r\n'
    return (head + "--w\r\n\r\n" * parts + "--w--\r\n").encode()


def stored_row(b: Bridge, inbound_id: int) -> InboundMessage:
    with Session(b.engine()) as s:
        return s.get(InboundMessage, inbound_id)


def ingest(b: Bridge, raw: bytes) -> dict:
    shown = json.loads(b.run("ingest", "-", "--json", stdin=raw.decode("utf-8", "surrogateescape")).stdout)
    return shown[0] if isinstance(shown, list) else shown


def test_a_message_nested_1000_deep_lands_in_unassigned_with_the_reason(bridge: Bridge) -> None:
    raw = nested(1000)
    shown = ingest(bridge, raw)
    assert (shown["route"], shown["rule"], shown["triage"]) == ("unassigned", "unreadable", "open")
    assert "1,000 multipart sections" in shown["reason"] and "its headers alone say" in shown["reason"]
    assert shown["from"] == "dave@cand.example.org" and shown["subject"] == "deep"
    assert stored_row(bridge, shown["id"]).raw.rstrip(b"\r\n") == raw.rstrip(b"\r\n")
    listed = bridge.json("unassigned", "list")
    assert [m["id"] for m in listed] == [shown["id"]]
    assert "not shown" in content_of(raw).body_text  # the page shows a notice, never parses it


def test_200000_empty_parts_are_read_from_the_headers_alone(lite_bridge: Bridge) -> None:
    shown = ingest(lite_bridge, wide(200_000))
    assert (shown["route"], shown["rule"]) == ("unassigned", "unreadable")
    assert "200,001 MIME parts" in shown["reason"]


def test_a_header_section_beyond_256_kib_is_read_in_part(lite_bridge: Bridge) -> None:
    """One To of 30,000 addresses (1.3 MB): the first 256 KiB of the headers are read, the message is kept
    whole and shown in Unassigned with the reason."""
    many = ", ".join(f'"Someone, {n}" <someone{n}@example.org>' for n in range(30_000))
    raw = (HEAD.format(subject="crowd", mid="crowd").replace("To: jobs+1042@example.test", f"To: {many}")
           + "Content-Type: text/plain\r\n\r\nHello\r\n").encode()
    shown = ingest(lite_bridge, raw)
    assert (shown["route"], shown["rule"]) == ("unassigned", "unreadable")
    assert "header section is 1,297 KiB" in shown["reason"] and "at most 256 KiB" in shown["reason"]
    assert shown["from"] == "dave@cand.example.org"
    assert stored_row(lite_bridge, shown["id"]).raw.rstrip(b"\r\n") == raw.rstrip(b"\r\n")


def test_a_message_beyond_4_mib_is_routed_on_what_its_first_4_mib_say(lite_bridge: Bridge) -> None:
    attachment = ("QUJD" * 19 + "\r\n") * 80_000  # 6 MiB of base64 after the reply
    raw = (HEAD.format(subject="cv", mid="cv") + 'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
           "--m\r\nContent-Type: text/plain\r\n\r\nMonday works, my CV is attached.\r\n"
           "--m\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + attachment + "--m--\r\n").encode()
    shown = ingest(lite_bridge, raw)
    assert (shown["route"], shown["employee_number"]) == ("employee", 1042)
    assert shown["parse_error"].startswith("read the first 4.0 MiB of 6.0 MiB for routing")
    row = stored_row(lite_bridge, shown["id"])
    assert row.raw.rstrip(b"\r\n") == raw.rstrip(b"\r\n") and "Monday works" in row.reply_text
    assert [a.size for a in content_of(raw).attachments] == [4_560_000]  # its page reads all of it


def test_a_message_within_the_limits_is_read_as_before(lite_bridge: Bridge) -> None:
    shown = ingest(lite_bridge, nested(40))
    assert (shown["route"], shown["employee_number"], shown["parse_error"]) == ("employee", 1042, None)


def test_nul_in_the_subject_is_stored_escaped_and_the_raw_bytes_exact(bridge: Bridge) -> None:
    raw = reply("nul@example.org", "cand@example.org", "jobs+1042@example.test", subject="Re: a\x00b").encode()
    shown = ingest(bridge, raw)
    assert (shown["route"], shown["subject"]) == ("employee", "Re: a\ufffdb")
    assert stored_row(bridge, shown["id"]).raw.rstrip(b"\r\n") == raw.rstrip(b"\r\n")


def _store(b: Bridge, n: int) -> int:
    raw = reply(f"p{n}@example.org", f"c{n}@example.org", "jobs+1042@example.test").encode()
    return raw_store.store(b.engine(), raw_store.Incoming(raw, "pipe")).id


def test_a_failing_message_is_retried_with_backoff_then_routed_to_unassigned(
        bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    poison, good = _store(bridge, 1), _store(bridge, 2)
    real = pipeline.decide

    def failing(session: Session, row: InboundMessage, settings: object = None) -> pipeline.Outcome:
        if row.id == poison:
            raise OperationalError("SELECT ...", {}, Exception("could not serialize access"))
        return real(session, row, settings)

    monkeypatch.setattr(pipeline, "decide", failing)
    assert pipeline.finish_unrouted(bridge.engine()) == 1  # routed: the good one; the poison failed
    first = stored_row(bridge, poison)
    assert (first.routed_at, first.route_attempts) == (None, 1) and "could not serialize access" in first.route_error
    assert first.route_next_at > dt.datetime.now(dt.UTC)  # backed off: the next pass leaves it
    assert stored_row(bridge, good).route == "employee"  # the message after it was not held up
    assert pipeline.finish_unrouted(bridge.engine()) == 0
    later = [dt.datetime.now(dt.UTC)]

    def clock() -> dt.datetime:  # a day passes between looks: every backoff is over
        later[0] += dt.timedelta(days=1)
        return later[0]

    monkeypatch.setattr(pipeline, "utcnow", clock)
    for attempt in range(2, pipeline.ROUTE_ATTEMPTS + 1):
        assert pipeline.finish_unrouted(bridge.engine()) == 0  # tried again, failed again
        assert stored_row(bridge, poison).route_attempts == attempt
    given_up = stored_row(bridge, poison)
    assert (given_up.route, given_up.rule, given_up.triage) == ("unassigned", "unreadable", "open")
    assert given_up.reason.startswith(f"could not be routed: failed {pipeline.ROUTE_ATTEMPTS} times")
    assert given_up.from_addr == "c1@example.org"  # read from its headers for the Unassigned list
    assert pipeline.finish_unrouted(bridge.engine()) == 0


def test_poison_messages_do_not_stop_the_ones_behind_them(lite_bridge: Bridge,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    poisoned = {_store(lite_bridge, n) for n in range(3)}
    good = _store(lite_bridge, 9)
    real = pipeline.decide

    def failing(session: Session, row: InboundMessage, settings: object = None) -> pipeline.Outcome:
        if row.id in poisoned:
            raise RuntimeError("a bug that fails every time")
        return real(session, row, settings)

    monkeypatch.setattr(pipeline, "decide", failing)
    pipeline.finish_unrouted(lite_bridge.engine(), limit=3)  # the oldest three, all failing
    pipeline.finish_unrouted(lite_bridge.engine(), limit=3)  # they are backed off: the good one's turn
    assert stored_row(lite_bridge, good).route == "employee"
    for inbound_id in poisoned:  # a bug in reading a message is not retried: Unassigned with the reason
        row = stored_row(lite_bridge, inbound_id)
        assert (row.route, row.rule) == ("unassigned", "unreadable") and "RuntimeError" in row.reason


def _session(port: int, mail_from: bytes, raw: bytes) -> bytes:
    """One SMTP transaction over a raw socket (smtplib cannot send bytes that are not UTF-8)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        for line in (b"EHLO client.example\r\n", b"MAIL FROM:<" + mail_from + b">\r\n",
                     b"RCPT TO:<jobs+1042@example.test>\r\n", b"DATA\r\n"):
            f.write(line)
            f.flush()
            while f.readline()[3:4] == b"-":  # the lines of a multi-line answer
                pass
        f.write(raw.rstrip(b"\r\n") + b"\r\n.\r\n")
        f.flush()
        return f.readline()


def test_an_envelope_that_is_not_utf8_fails_neither_itself_nor_its_batch(bridge: Bridge) -> None:
    receiver = Receiver(bridge.engine(), ReceiverConfig(port=free_port()))
    receiver.start()
    try:
        answers: dict[str, bytes] = {}

        def send(name: str, mail_from: bytes) -> None:
            raw = reply(f"{name}@example.org", "cand@example.org", "jobs+1042@example.test").encode()
            answers[name] = _session(receiver.port, mail_from, raw)

        threads = [threading.Thread(target=send, args=(f"ok{n}", f"ok{n}@example.org".encode())) for n in range(30)]
        threads.insert(15, threading.Thread(target=send, args=("bad", b"\xff\xfe@bad.example")))
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        receiver.stop()
    assert all(a.startswith(b"250") for a in answers.values()), {k: v for k, v in answers.items()
                                                                 if not v.startswith(b"250")}
    with Session(bridge.engine()) as s:
        bad = s.exec(select(InboundMessage).where(InboundMessage.message_id == "<bad@example.org>")).one()
    assert bad.envelope_from == "\\xff\\xfe@bad.example"


def test_ingest_takes_what_the_receiver_takes_and_no_more(lite_bridge: Bridge, tmp_path: Path) -> None:
    big = tmp_path / "big.eml"
    big.write_bytes(reply("big@example.org", "cand@example.org", "jobs+1042@example.test").encode()
                    + b"x" * limits.MAX_MESSAGE_BYTES)
    refused = lite_bridge.run("ingest", str(big), ok=False)
    assert refused.exit_code == 1 and f"larger than {limits.MAX_MESSAGE_BYTES:,} bytes" in refused.stderr
    assert lite_bridge.json("messages", "list") == []


def test_a_reused_message_id_with_other_content_is_stored_flagged_and_unassigned(bridge: Bridge) -> None:
    first = reply("same@example.org", "cand@example.org", "jobs+1042@example.test", body="Monday works.")
    again = ingest(bridge, ("Received: from mx2.example.org by mx.example.test\r\n" + first).encode())
    original = ingest(bridge, first.encode())
    assert original["id"] == again["id"]  # the same message by another path: one row
    other = ingest(bridge, reply("same@example.org", "attacker@evil.example", "jobs+1042@example.test",
                                 body="Send the contract to me instead.").encode())
    assert other["id"] != original["id"] and not other["duplicate"]
    assert (other["route"], other["rule"], other["flagged"]) == ("unassigned", "reused_message_id", True)
    assert f"of message {original['id']}" in other["reason"]
    once_more = ingest(bridge, reply("same@example.org", "attacker@evil.example", "jobs+1042@example.test",
                                     body="Send the contract to me instead.").encode())
    assert (once_more["id"], once_more["duplicate"]) == (other["id"], True)
    assert stored_row(bridge, original["id"]).route == "employee"  # the first is untouched
