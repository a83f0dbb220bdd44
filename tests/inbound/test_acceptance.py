"""Issue acceptance for inbound, end to end on SQLite and PostgreSQL.

A recruiter writes to a candidate; replies come back through the SMTP receiver and through the
IMAP catch-all, shaped as Gmail, Outlook and Apple Mail write them (with and without In-Reply-To;
the numbered address in To, in Cc, or only in Delivered-To). Each lands with its recruiter, unknown
mail in Unassigned, an out-of-office flagged automatic, a bounce marks the sent message
undeliverable, and nothing is stored twice.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient
from sqlmodel import Session, select

from bridge.inbound.imap import one_pass
from bridge.inbound.smtp_receiver import Receiver, ReceiverConfig
from bridge.net.connections import tls_context
from models import ImapServer
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import routed
from tests.helpers.messages import dsn
from tests.helpers.ports import free_port
from tests.helpers.setup_steps import add_account, add_alias, add_imap
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot

pytestmark = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")
DATE = "Mon, 23 Nov 2026 10:00:00 +0000"


def gmail(sent_id: str) -> str:
    return (f"MIME-Version: 1.0\r\nDate: {DATE}\r\nReferences: {sent_id}\r\nIn-Reply-To: {sent_id}\r\n"
            "Message-ID: <CAH7x=Qa1@mail.gmail.com>\r\nSubject: Re: Interview\r\n"
            "From: Sam Candidate <sam@example.org>\r\nTo: Ana Ruiz <jobs+1042@example.test>\r\n"
            'Content-Type: multipart/alternative; boundary="000000000000a1"\r\n\r\n'
            '--000000000000a1\r\nContent-Type: text/plain; charset="UTF-8"\r\n\r\nMonday at 10 works for me.\r\n\r\n'
            "On Mon, Nov 23, 2026 at 9:00 AM Ana Ruiz <jobs+1042@example.test> wrote:\r\n> Hello Sam\r\n\r\n"
            '--000000000000a1\r\nContent-Type: text/html; charset="UTF-8"\r\n\r\n'
            '<div dir="ltr">Monday at 10 works for me.</div><br><div class="gmail_quote">'
            "<blockquote>Hello Sam</blockquote></div>\r\n--000000000000a1--\r\n")


def outlook_cc_no_in_reply_to() -> str:
    return (f"From: Kim Lee <kim@example.net>\r\nTo: hr-desk@example.test\r\nCC: jobs+1042@example.test\r\n"
            f"Subject: RE: Interview\r\nThread-Topic: Interview\r\nThread-Index: AdlBcdEFGhIjKlMnOpQrStUvWxYz\r\n"
            f"Date: {DATE}\r\nMessage-ID: <DB9PR01MB1234@DB9PR01MB1234.eurprd01.prod.outlook.com>\r\n"
            "Content-Language: en-US\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\n"
            "I would like to apply as well.\r\n\r\n________________________________\r\nFrom: Ana Ruiz\r\n"
            "Sent: Monday\r\nTo: Kim\r\nSubject: Interview\r\n\r\nHello\r\n")


def apple_delivered_to_only() -> str:
    return ("Delivered-To: jobs+1042@example.test\r\nFrom: Lee Park <lee@example.com>\r\n"
            "Content-Type: text/plain;\r\n\tcharset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n"
            "Mime-Version: 1.0 (Mac OS X Mail 16.0)\r\nSubject: Application\r\n"
            f"Message-Id: <5F1A2B3C-1111-2222-3333-444455556666@example.com>\r\nDate: {DATE}\r\n"
            "To: careers@example.test\r\n\r\nPlease find my application.\r\n")


def out_of_office() -> str:
    return ("From: Sam Candidate <sam@example.org>\r\nTo: jobs+1042@example.test\r\n"
            "Subject: Automatic reply: Interview\r\nAuto-Submitted: auto-replied\r\nX-Auto-Response-Suppress: All\r\n"
            f"Message-ID: <oof-1@example.org>\r\nDate: {DATE}\r\nContent-Type: text/plain\r\n\r\n"
            "I am out of the office until Monday.\r\n")


def stranger() -> str:
    return (f"From: someone@example.com\r\nTo: info@example.test\r\nSubject: Question\r\nDate: {DATE}\r\n"
            "Message-ID: <q-1@example.com>\r\n\r\nDo you have openings?\r\n")


@pytest.fixture
def receiver(bridge: Bridge) -> Iterator[Receiver]:
    r = Receiver(bridge.engine(), ReceiverConfig(port=free_port()))
    r.start()
    yield r
    r.stop()


def by_message_id(b: Bridge) -> dict[str, dict]:
    return {m["message_id"]: m for m in b.json("messages", "list")}


def test_replies_by_smtp_and_imap_catch_all(bridge: Bridge, receiver: Receiver, dovecot: Dovecot, smtp_peer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept")
    add_account(bridge, peer.host, peer.port, monkeypatch)
    add_alias(bridge)
    add_imap(bridge, dovecot, monkeypatch, name="catch-all", poll_folder="INBOX")
    bridge.run("employee", "set-delivery", "1042", "none")
    bridge.run("send", "--employee", "1042", "--to", "sam@example.org", "--subject", "Interview", "--body", "Hello")
    bridge.run("worker", "--once")
    [sent] = bridge.json("log")
    assert sent["status"] == "sent"

    with smtplib.SMTP(receiver.hostname, receiver.port) as smtp:  # by SMTP, as the MX hands them over
        smtp.sendmail("sam@example.org", ["jobs+1042@example.test"], gmail(sent["message_id"]).encode())
        smtp.sendmail("kim@example.net", ["jobs+1042@example.test"], outlook_cc_no_in_reply_to().encode())
        smtp.sendmail("sam@example.org", ["jobs+1042@example.test"], out_of_office().encode())
        smtp.sendmail("", ["jobs+1042@example.test"], dsn(sent["message_id"], "sam@example.org").encode())
    routed(bridge, 4)

    with IMAPClient("localhost", dovecot.port, ssl=False) as imap:  # the catch-all mailbox, as delivered
        imap.starttls(tls_context(str(dovecot.cafile)))
        imap.login(dovecot.user, dovecot.password)
        for message in (apple_delivered_to_only(), stranger(), gmail(sent["message_id"])):  # the last: seen twice
            imap.append("INBOX", message.encode())
    with Session(bridge.engine()) as s:
        server_id = s.exec(select(ImapServer.id).where(ImapServer.name == "catch-all")).one()
    report = one_pass.poll_once(bridge.engine(), server_id, owner="test")
    assert report.error is None, report.error

    got = by_message_id(bridge)
    assert len(got) == 6  # the Gmail reply came by SMTP and by IMAP: stored once
    gmail_reply = got["<CAH7x=Qa1@mail.gmail.com>"]
    assert (gmail_reply["source"], gmail_reply["route"], gmail_reply["employee_number"], gmail_reply["rule"]) == \
        ("smtp", "employee", 1042, "thread")
    outlook = got["<DB9PR01MB1234@db9pr01mb1234.eurprd01.prod.outlook.com>"]
    assert (outlook["route"], outlook["employee_number"], outlook["rule"]) == ("employee", 1042, "numbered")
    apple = got["<5F1A2B3C-1111-2222-3333-444455556666@example.com>"]
    assert (apple["source"], apple["route"], apple["employee_number"]) == ("imap", "employee", 1042)
    assert "Delivered-To" in apple["reason"]
    oof = got["<oof-1@example.org>"]
    assert (oof["kind"], oof["route"], oof["employee_number"]) == ("auto_reply", "employee", 1042)
    assert got["<q-1@example.com>"]["route"] == "unassigned"
    bounce = next(m for m in got.values() if m["kind"] == "bounce")
    assert bounce["outbound_id"] == sent["id"]
    [after] = [e for e in bridge.json("log") if e["purpose"] == "message"]
    assert after["status"] == "undeliverable" and "does not exist" in after["hint"]
    text = bridge.json("unassigned", "show", str(gmail_reply["id"]))["text"]
    assert text == "Monday at 10 works for me."
