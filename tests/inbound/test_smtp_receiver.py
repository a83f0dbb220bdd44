"""The SMTP receiver with real clients (smtplib, swaks): 250 only after commit, never an open relay.
"""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bridge.inbound.smtp_receiver import Receiver, ReceiverConfig
from models import InboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import routed
from tests.helpers.messages import reply
from tests.helpers.ports import free_port


@pytest.fixture
def receiver(bridge: Bridge) -> Iterator[Receiver]:
    r = Receiver(bridge.engine(), ReceiverConfig(port=free_port(), max_bytes=200_000))
    r.start()
    yield r
    r.stop()


@pytest.fixture
def lite_receiver(lite_bridge: Bridge) -> Iterator[Receiver]:
    r = Receiver(lite_bridge.engine(), ReceiverConfig(port=free_port(), max_bytes=200_000, max_header_bytes=20_000))
    r.start()
    yield r
    r.stop()


def test_reply_over_smtp_is_stored_exactly_and_routed(bridge: Bridge, receiver: Receiver) -> None:
    raw = reply("s1@example.org", "cand@example.org", "jobs+1042@example.test").encode()
    with smtplib.SMTP(receiver.hostname, receiver.port) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("smtputf8") and smtp.has_extn("size")
        smtp.mail("cand@example.org")
        assert smtp.rcpt("jobs+1042@example.test")[0] == 250
        code, msg = smtp.data(raw)
    assert code == 250 and b"stored as" in msg
    [m] = routed(bridge, 1)
    assert (m["source"], m["route"], m["employee_number"]) == ("smtp", "employee", 1042)
    with Session(bridge.engine()) as s:
        row = s.exec(select(InboundMessage)).one()
    assert row.raw.rstrip(b"\r\n") == raw.rstrip(b"\r\n")
    assert row.envelope_from == "cand@example.org" and "jobs+1042@example.test" in row.envelope_to


def test_no_relay_for_foreign_domains(lite_bridge: Bridge, lite_receiver: Receiver) -> None:
    with smtplib.SMTP(lite_receiver.hostname, lite_receiver.port) as smtp:
        smtp.ehlo()
        smtp.mail("spammer@example.net")
        code, msg = smtp.rcpt("victim@example.org")
        assert code == 550 and b"5.7.1" in msg
        smtp.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("spammer@example.net", ["victim@example.org"], b"Subject: x\r\n\r\nx\r\n")
    assert lite_bridge.json("messages", "list") == []


def test_size_and_header_limits(lite_bridge: Bridge, lite_receiver: Receiver) -> None:
    with smtplib.SMTP(lite_receiver.hostname, lite_receiver.port) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as big:  # SIZE declared too large
            smtp.sendmail("a@example.org", ["jobs+1042@example.test"], b"x" * 300_000)
        assert big.value.smtp_code == 552
        smtp.rset()
        huge_headers = "".join(f"X-Pad-{n}: {'y' * 900}\r\n" for n in range(30)) + "Subject: h\r\n\r\nbody\r\n"
        with pytest.raises(smtplib.SMTPDataError) as headers:
            smtp.sendmail("a@example.org", ["jobs+1042@example.test"], huge_headers.encode())
        assert headers.value.smtp_code == 552 and b"header too large" in headers.value.smtp_error
    assert lite_bridge.json("messages", "list") == []


def test_storage_failure_answers_451_and_stores_nothing(lite_bridge: Bridge, lite_receiver: Receiver) -> None:
    with lite_bridge.engine().begin() as conn:  # the table is gone: the write fails for real
        conn.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_away"))
    with smtplib.SMTP(lite_receiver.hostname, lite_receiver.port) as smtp, \
            pytest.raises(smtplib.SMTPDataError) as failed:
        smtp.sendmail("a@example.org", ["jobs+1042@example.test"],
                      reply("f@example.org", "a@example.org", "jobs+1042@example.test").encode())
    assert failed.value.smtp_code == 451 and b"4.3.0" in failed.value.smtp_error
    assert b"Traceback" not in failed.value.smtp_error and b"inbound_message" not in failed.value.smtp_error


def test_concurrent_sessions_all_stored_once(bridge: Bridge, receiver: Receiver) -> None:
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            with smtplib.SMTP(receiver.hostname, receiver.port) as smtp:
                for k in range(10):
                    mid = f"c{n}-{k}@example.org"
                    smtp.sendmail(f"c{n}@example.org", ["jobs+1042@example.test"],
                                  reply(mid, f"c{n}@example.org", "jobs+1042@example.test").encode())
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    got = routed(bridge, 80, timeout=30)
    assert len({m["message_id"] for m in got}) == 80


def test_same_reply_by_smtp_and_by_pipe_is_stored_once(lite_bridge: Bridge, lite_receiver: Receiver) -> None:
    message = reply("twice@example.org", "cand@example.org", "jobs+1042@example.test")
    with smtplib.SMTP(lite_receiver.hostname, lite_receiver.port) as smtp:
        smtp.sendmail("cand@example.org", ["jobs+1042@example.test"], message.encode())
    routed(lite_bridge, 1)
    lite_bridge.run("ingest", "-", stdin="Received: from relay\r\n" + message)
    assert len(lite_bridge.json("messages", "list")) == 1


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_delivers_to_the_receiver(lite_bridge: Bridge, lite_receiver: Receiver) -> None:
    done = subprocess.run(["swaks", "--server", f"{lite_receiver.hostname}:{lite_receiver.port}",
                           "--from", "cand@example.org", "--to", "jobs+1042@example.test",
                           "--header", "Subject: Re: Interview", "--body", "Monday works."],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "250 2.0.0 OK: stored as" in done.stdout
    [m] = routed(lite_bridge, 1)
    assert (m["route"], m["employee_number"], m["subject"]) == ("employee", 1042, "Re: Interview")


def test_loop_probe_through_our_own_receiver(lite_bridge: Bridge, lite_receiver: Receiver, smtp_peer) -> None:
    """`test loop`: the alias's account delivers to the receiver, the probe routes back to its employee."""
    lite_bridge.run("smtp", "add", "to-receiver", "--host", lite_receiver.hostname, "--port", str(lite_receiver.port),
                    "--security", "none")
    lite_bridge.run("alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana",
                    "--from", "ana@example.test", "--smtp", "to-receiver")
    out = lite_bridge.run("test", "loop", "Ana jobs", "--timeout", "10").stdout
    assert "Came back by smtp" in out and "Routed to employee 1042" in out and out.strip().endswith("Status: OK")
    assert lite_bridge.json("log") == []  # a probe is not Mail Log traffic and is never forwarded

    sink = smtp_peer("accept")  # an account whose mail never reaches the bridge
    lite_bridge.run("smtp", "add", "elsewhere", "--host", sink.host, "--port", str(sink.port), "--security", "none")
    lite_bridge.run("alias", "add", "--employee", "1042", "--description", "Lost", "--display-name", "Ana",
                    "--from", "ana2@example.test", "--smtp", "elsewhere")
    lost = lite_bridge.run("test", "loop", "Lost", "--timeout", "1", ok=False)
    assert lost.exit_code == 1 and "Broken leg: never arrived" in lost.stdout

    refused = smtp_peer("relay_denied")
    lite_bridge.run("smtp", "add", "refuses", "--host", refused.host, "--port", str(refused.port), "--security", "none")
    lite_bridge.run("alias", "add", "--employee", "1042", "--description", "Refused", "--display-name", "Ana",
                    "--from", "ana3@example.test", "--smtp", "refuses")
    bad = lite_bridge.run("test", "loop", "Refused", "--timeout", "1", ok=False)
    assert bad.exit_code == 1 and "Broken leg: send refused" in bad.stdout and "relay" in bad.stdout


def test_starttls_when_a_certificate_is_configured(lite_bridge: Bridge, tls_cert) -> None:  # noqa: ANN001
    import ssl

    receiver = Receiver(lite_bridge.engine(), ReceiverConfig(port=free_port(), certfile=str(tls_cert.certfile),
                                                             keyfile=str(tls_cert.keyfile)))
    receiver.start()
    try:
        with smtplib.SMTP(receiver.hostname, receiver.port) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("starttls")
            smtp.starttls(context=ssl.create_default_context(cafile=str(tls_cert.cafile)))
            smtp.sendmail("cand@example.org", ["jobs+1042@example.test"],
                          reply("tls@example.org", "cand@example.org", "jobs+1042@example.test").encode())
        [m] = routed(lite_bridge, 1)
        assert m["route"] == "employee"
    finally:
        receiver.stop()
