"""Composing: header injection refused, MIME right for non-ASCII and HTML, automated mail marked."""

import email
import email.policy

import pytest

from bridge.errors import InputError
from bridge.input_checks import check_address
from bridge.outbound.compose import Draft, render, text_of_html


def draft(**kw: object) -> Draft:
    base = dict(from_name="Ana Ruiz", from_addr="jobs+1042@example.test", to_addr="cand@example.org",
                subject="Interview", message_id="<r.abc@example.test>", mailer="replybridge", text="Hello")
    base.update(kw)
    return Draft(**base)  # type: ignore[arg-type]


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


@pytest.mark.parametrize("field", ["subject", "from_name", "to_name", "reply_to", "in_reply_to"])
@pytest.mark.parametrize("brk", ["\r\n", "\n", "\r"])
def test_line_breaks_in_headers_are_refused(field: str, brk: str) -> None:
    with pytest.raises(InputError, match="line break"):
        render(draft(**{field: f"x{brk}Bcc: victim@example.org"}))


def test_crlf_uses_crlf_and_no_bare_lf() -> None:
    raw = render(draft(text="line one\nline two\n"))
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_non_ascii_names_and_subject_are_encoded_words() -> None:
    raw = render(draft(from_name="José Núñez", subject="Entrevista mañana ✓", text="¡Hola!"))
    assert raw.isascii()  # encoded-words in headers, quoted-printable in the body: no 8BITMIME needed
    msg = parse(raw)
    assert msg["Subject"] == "Entrevista mañana ✓"
    assert msg["From"].addresses[0].display_name == "José Núñez"
    assert msg.get_content().strip() == "¡Hola!"


def test_html_gets_a_text_alternative() -> None:
    msg = parse(render(draft(text=None, html="<p>Hi <b>Sam</b></p><p><a href='https://x.test/a'>apply</a></p>")))
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",)).get_content()
    assert "Hi Sam" in plain and "https://x.test/a" in plain
    assert "<b>Sam</b>" in msg.get_body(("html",)).get_content()


def test_automated_mail_is_marked() -> None:
    msg = parse(render(draft(auto_submitted="auto-generated")))
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert "Auto-Submitted" not in parse(render(draft()))


def test_standard_headers() -> None:
    msg = parse(render(draft(thread_index="AQHZ", reply_to="jobs+1042@example.test")))
    assert msg["Message-ID"] == "<r.abc@example.test>"
    assert msg["X-Mailer"] == "replybridge" and msg["Thread-Index"] == "AQHZ" and msg["Date"]
    assert msg["Reply-To"] == "jobs+1042@example.test"


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b", "two@ex.test, three@ex.test", "Name <a@ex.test>",
                                 "a@ex.test\r\nBcc: x@y.test"])
def test_check_address_refuses(bad: str) -> None:
    with pytest.raises(InputError):
        check_address(bad, "recipient")


def test_text_of_html_drops_scripts() -> None:
    assert "alert" not in text_of_html("<script>alert(1)</script><p>ok</p>")
