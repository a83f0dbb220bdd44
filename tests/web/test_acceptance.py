"""The issue's acceptance, end to end: once in the browser as the people who use it, once over the API as an
applicant tracking system that listens to verified webhooks.

Everything is real: `replybridge serve` as a process, Chromium, an SMTP peer with STARTTLS and AUTH, Dovecot
for the Sent folder, a webhook receiver that checks every signature with the standardwebhooks package.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
import re
import smtplib

import httpx
import pytest

from bridge.ops.webhooks import subscriptions
from tests.helpers.messages import reply
from tests.helpers.webhook_receiver import Receiver
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot
from tests.servers.smtp_peers import SmtpPeer
from tests.servers.web import Served, press_test_connection, sign_in

SMTP_PASSWORD = "smtp-secret-acceptance"


def _candidate_writes(web: Served, mid: str, sender: str, to: str, subject: str, body: str) -> None:
    """A candidate's mail reaches serve's SMTP receiver, as it would from the outside."""
    address = email.utils.parseaddr(sender)[1]
    with smtplib.SMTP("127.0.0.1", web.smtp_port, timeout=10) as smtp:
        smtp.sendmail(address, [to], reply(mid, sender, to, subject, body=body + "\r\n").encode())


def _routed(web: Served, mid: str) -> dict:
    """The inbound message with this Message-ID once the routing process has decided where it goes."""
    def decided() -> dict | None:
        return next((m for m in web.bridge.json("messages", "list")
                     if m["message_id"] == f"<{mid}>" and m["route"]), None)
    return web.wait_for(decided, what=f"<{mid}> routed")


def _sent_to(peer: SmtpPeer, address: str) -> list[email.message.EmailMessage]:
    """What the peer accepted for one recipient (forwards to the recruiter go through it too)."""
    return [email.message_from_bytes(r.data, policy=email.policy.default) for r in peer.received
            if address in r.rcpt_tos]


def _nav_count(page) -> int:  # noqa: ANN001
    label = page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(r"^Unassigned messages"))
    return int(re.search(r"\((\d+)\)", label.inner_text()).group(1))


def _press(page, button: str, path: str) -> int:  # noqa: ANN001
    """Press a form's button; the status of the POST it made (303 when stored, 422 when refused)."""
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith(path)) as answer:
        page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    return answer.value.status


@pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")
def test_admin_sets_up_then_a_recruiter_answers_triages_and_the_next_reply_lands_with_her(
        web: Served, page, smtp_peer, tls_cert, dovecot: Dovecot) -> None:  # noqa: ANN001
    peer: SmtpPeer = smtp_peer("accept", tls="starttls", cert=tls_cert, auth=("ana", SMTP_PASSWORD))

    # 1. The admin signs in to the freshly started serve
    sign_in(page, web, "admin@example.test")

    # 2. SMTP account at the company's mail server (STARTTLS, AUTH), database-wide; Test connection is green
    page.get_by_role("link", name="SMTP accounts").click()
    page.get_by_label("Name", exact=True).fill("office")
    page.get_by_label("Host", exact=True).fill("localhost")
    page.get_by_label("Port", exact=True).fill(str(peer.port))
    page.get_by_label("Security", exact=True).select_option("starttls")
    page.get_by_label("Username", exact=True).fill("ana")
    page.get_by_label("Password", exact=True).fill(SMTP_PASSWORD)
    page.get_by_label("CA file", exact=True).fill(str(tls_cert.cafile))
    page.get_by_label("Database-wide account").check()
    assert _press(page, "Add SMTP account", "/admin/smtp") == 303
    assert "Status: OK" in press_test_connection(page)

    # 3. IMAP server on the real Dovecot, so sent mail is filed in Sent; Test connection is green
    page.get_by_role("link", name="IMAP servers").click()
    page.get_by_label("Name", exact=True).fill("mailbox")
    page.get_by_label("Host", exact=True).fill("localhost")
    page.get_by_label("Port", exact=True).fill(str(dovecot.ssl_port))
    page.get_by_label("Security", exact=True).select_option("ssl")
    page.get_by_label("Username", exact=True).fill(dovecot.user)
    page.get_by_label("Password", exact=True).fill(dovecot.password)
    page.get_by_label("CA file", exact=True).fill(str(dovecot.cafile))
    assert _press(page, "Add IMAP server", "/admin/imap") == 303
    assert press_test_connection(page)[-2:] == ["Sent folder: Sent", "Status: OK"]

    # 4. Ana's alias, sending through "office" and filing in "mailbox"
    page.get_by_role("link", name="Aliases").click()
    page.get_by_label("Employee", exact=True).select_option("1042")
    page.get_by_label("Description", exact=True).fill("Ana at Acme")
    page.get_by_label("Display name", exact=True).fill("Ana Ruiz")
    page.get_by_label("From address", exact=True).fill("ana@example.test")
    page.get_by_label("SMTP account", exact=True).select_option("office")
    page.get_by_label("IMAP server", exact=True).select_option("mailbox")
    assert _press(page, "Add alias", "/admin/aliases") == 303
    [alias] = web.bridge.json("alias", "list")
    assert (alias["employee_number"], alias["smtp"], alias["imap"]) == (1042, "office", "mailbox")

    # 5. The admin signs out; Ana, a recruiter, signs in
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{web.base_url}/login")
    sign_in(page, web, "ana@example.test")
    assert page.get_by_role("link", name="SMTP accounts").count() == 0

    # 6. A candidate writes to Ana's numbered address: it is Ana's, and she opens it
    _candidate_writes(web, "carla-1@candidates.example", "Carla Diaz <carla@candidates.example>",
                      "jobs+1042@example.test", "Backend engineer", "I would like to apply.")
    first = _routed(web, "carla-1@candidates.example")
    assert (first["route"], first["employee_number"]) == ("employee", 1042)
    page.goto(f"{web.base_url}/messages/{first['id']}")
    assert "I would like to apply." in page.locator(".message-text").first.inner_text()

    # 7. Ana answers in the thread: the peer gets it from her numbered address, and it is filed in Sent
    page.get_by_label("Reply").fill("Thank you, Carla. Could you come on Monday at 10?\nAna")
    assert _press(page, "Send reply", f"/messages/{first['id']}/reply") == 303
    assert page.locator(".flash").inner_text().startswith("Reply queued (Mail Log #")
    [answer] = web.wait_for(lambda: _sent_to(peer, "carla@candidates.example"), what="the reply at the peer")
    assert answer["From"].addresses[0].addr_spec == "jobs+1042@example.test"
    assert (answer["Subject"], answer["In-Reply-To"]) == ("Re: Backend engineer", "<carla-1@candidates.example>")
    assert "Could you come on Monday at 10?" in answer.get_content()
    web.wait_for(lambda: any(email.message_from_bytes(m)["Message-ID"] == answer["Message-ID"]
                             for m in dovecot.folder_messages("Sent")), what="the reply in Dovecot's Sent")
    # answering confirmed Carla as the candidate: her message and the answer are one thread, in order
    page.get_by_role("link", name="My conversations").click()
    page.locator("tr", has_text="carla@candidates.example").get_by_role("link").click()
    assert [t.split()[0] for t in page.locator("ol.thread > li").all_inner_texts()] == ["Received", "Sent"]

    # 8. Carla answers "Re: Backend engineer" from a private address to the general one: no rule places it
    _candidate_writes(web, "carla-2@mail.example", "Carla Diaz <carla.diaz@gmail.com>", "jobs@example.test",
                      "Re: Backend engineer", "Monday at 10 is fine.")
    stray = _routed(web, "carla-2@mail.example")
    assert (stray["route"], stray["employee_number"]) == ("unassigned", None)

    # 9. Ana opens Unassigned messages: the suggestion names her, with the subject she sent as evidence
    page.get_by_role("link", name=re.compile(r"^Unassigned messages")).click()
    assert page.locator("h1").inner_text() == "Unassigned messages" and _nav_count(page) == 1
    row = page.locator("table.inbox tbody tr", has_text="carla.diaz@gmail.com")
    suggested = row.locator("td.suggested").inner_text()
    assert "Ana Ruiz (1042)" in suggested
    assert re.search(r'answers "(Re: )?Backend engineer" sent by Ana Ruiz on \d{4}-\d{2}-\d{2}', suggested)

    # 10. She assigns it with the suggestion's button; the count in the navigation goes back to 0
    row.get_by_role("button", name="Assign to suggested").click()
    page.wait_for_load_state()
    assert page.locator(".flash").inner_text() == "Assigned 1 message to Ana Ruiz (1042)."
    assert _nav_count(page) == 0
    assigned = next(m for m in web.bridge.json("messages", "list") if m["id"] == stray["id"])
    assert (assigned["route"], assigned["employee_number"], assigned["triage"]) == ("employee", 1042, "assigned")

    # 11. Carla's next mail from that address, with no thread headers at all, lands with Ana by itself
    _candidate_writes(web, "carla-3@mail.example", "Carla Diaz <carla.diaz@gmail.com>", "jobs@example.test",
                      "Directions", "Where do I find your office?")
    again = _routed(web, "carla-3@mail.example")
    assert (again["route"], again["employee_number"]) == ("employee", 1042)
    web.wait_for(lambda: any(m["Message-ID"] == "<carla-3@mail.example>" for m in _sent_to(peer, "ana@example.test")),
                 what="the mail forwarded to Ana's own mailbox")
    page.reload()
    assert _nav_count(page) == 0
    # 12. In My conversations the private address is a thread of Ana's now, holding both of those messages
    page.get_by_role("link", name="My conversations").click()
    page.locator("tr", has_text="carla.diaz@gmail.com").get_by_role("link").click()
    assert page.locator("h1").inner_text() == "Conversation with Carla Diaz"
    assert page.locator("ol.thread > li").count() == 2
    assert page.get_by_role("link", name="Re: Backend engineer").get_attribute("href") == f"/messages/{stray['id']}"
    page.get_by_role("link", name="Directions").click()
    page.wait_for_url(f"{web.base_url}/messages/{again['id']}")
    assert page.errors == []


def test_an_ats_does_the_same_over_the_api_and_hears_about_it_by_verified_webhooks(
        web_both: Served, smtp_peer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    web = web_both
    peer: SmtpPeer = smtp_peer("accept")

    # 1. Set-up by the operator: an admin token for the ATS, a webhook to its receiver, a database-wide account
    token = web.bridge.run("token", "create", "ats", "--admin").stdout.strip()
    secret = subscriptions.new_secret()
    monkeypatch.setenv("ATS_HOOK_SECRET", secret)
    receiver = Receiver(secret)
    try:
        web.bridge.run("settings", "set", "webhook_private_targets", "on")  # the ATS listens on loopback here
        web.bridge.run("webhook", "add", receiver.url, "--secret-env", "ATS_HOOK_SECRET")
        web.bridge.run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none",
                       "--default")
        api = httpx.Client(base_url=f"{web.base_url}/api/v1", headers={"Authorization": f"Bearer {token}"},
                           timeout=15)
        with api:
            _ats_story(web, api, peer, receiver)
    finally:
        receiver.stop()


def _event(web: Served, receiver: Receiver, kind: str, **data: object) -> dict:
    """The data of the one verified event of this type whose data holds these values."""
    def found() -> list[dict]:
        return [g.body["data"] for g in receiver.events(kind)
                if all(g.body["data"].get(key) == value for key, value in data.items())]
    [event] = web.wait_for(found, what=f"a verified {kind} with {data}")
    return event


def _ats_story(web: Served, api: httpx.Client, peer: SmtpPeer, receiver: Receiver) -> None:
    # 2. The ATS writes to a candidate as employee 1042: queued (202), sent through the peer, "sent" in the list
    r = api.post("/outbound", json={"employee_number": 1042, "to": "dana@candidates.example",
                                    "subject": "Backend engineer", "body": "Are you still interested?"})
    assert r.status_code == 202, r.text
    queued = r.json()
    assert (queued["status"], queued["to"], queued["employee_number"]) == ("queued", "dana@candidates.example", 1042)
    [sent] = web.wait_for(lambda: _sent_to(peer, "dana@candidates.example"), what="the message at the peer")
    assert (sent["Subject"], sent["Message-ID"]) == ("Backend engineer", queued["message_id"])
    assert sent["From"].addresses[0].addr_spec == "jobs+1042@example.test"

    def status() -> str:
        return next(m["status"] for m in api.get("/outbound").json()["items"] if m["id"] == queued["id"])
    web.wait_for(lambda: status() == "sent", what="GET /outbound saying sent")

    # 3. ... and hears it was sent, by a webhook whose signature the receiver verified
    event = _event(web, receiver, "outbound.sent", id=queued["id"])
    assert (event["status"], event["message_id"], event["employee_number"]) == ("sent", queued["message_id"], 1042)

    # 4. Someone unknown answers "Re: Backend engineer" to the general address: it is Unassigned
    _candidate_writes(web, "dana-1@mail.example", "Dana Kim <dana.kim@gmail.com>", "jobs@example.test",
                      "Re: Backend engineer", "Yes, still interested!")

    def unassigned() -> list[dict]:
        return api.get("/messages", params={"route": "unassigned"}).json()["items"]
    [stray] = web.wait_for(unassigned, what="the reply in GET /messages?route=unassigned")
    assert (stray["from"], stray["subject"], stray["triage"]) == ("dana.kim@gmail.com", "Re: Backend engineer", "open")
    routed = _event(web, receiver, "message.routed", id=stray["id"])
    assert (routed["route"], routed["employee_number"]) == ("unassigned", None)

    # 5. The ATS assigns it to 1042 and hears message.assigned
    r = api.post(f"/messages/{stray['id']}/assign", json={"employee_number": 1042})
    assert r.status_code == 200, r.text
    assert (r.json()["route"], r.json()["employee_number"], r.json()["triage"]) == ("employee", 1042, "assigned")
    assigned = _event(web, receiver, "message.assigned", id=stray["id"])
    assert (assigned["employee_number"], assigned["candidate"]) == (1042, "dana.kim@gmail.com")
    assert unassigned() == []

    # 6. Dana's next mail routes to 1042 by itself, and the ATS hears message.routed with employee_number 1042
    _candidate_writes(web, "dana-2@mail.example", "Dana Kim <dana.kim@gmail.com>", "jobs@example.test",
                      "When?", "Which day suits you?")
    routed = _event(web, receiver, "message.routed", message_id="<dana-2@mail.example>")
    assert (routed["route"], routed["employee_number"], routed["from"]) == ("employee", 1042, "dana.kim@gmail.com")
    listed = api.get("/messages", params={"employee": 1042}).json()["items"]
    assert routed["id"] in [m["id"] for m in listed]
    assert receiver.unverified == []
