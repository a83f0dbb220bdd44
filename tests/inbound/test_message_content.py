"""Reading stored messages for people: reply text and quoted history, sanitized HTML, attachments.

Crafted raw messages only (no corpus): each test names the hostile or broken construct it feeds in.
"""

from __future__ import annotations

import base64
import re

import pytest

from bridge.errors import NotFound
from bridge.inbound.message_content import attachment, content_of, headers_of, is_html_like, reply_references


def mime(*parts: str, boundary: str = "B", kind: str = "mixed", headers: str = "") -> bytes:
    """A multipart message of the given parts (each with its own headers)."""
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"
    return (f"From: Cand <cand@example.org>\r\nTo: jobs@example.test\r\nSubject: Re: Interview\r\n{headers}"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/{kind}; boundary=\"{boundary}\"\r\n\r\n{body}").encode()


def html_message(html: str) -> bytes:
    return ("From: cand@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"\r\n{html}").encode()


TEXT_REPLY = ("Content-Type: text/plain; charset=utf-8\r\n\r\nMonday works for me.\r\n\r\n"
              "On Mon, 23 Nov 2026 at 10:00, Ana Ruiz <jobs+1042@example.test> wrote:\r\n"
              "> Can you come on Monday?\r\n> Best, Ana\r\n")


def test_reply_text_first_and_quoted_history_apart() -> None:
    got = content_of(mime(TEXT_REPLY))
    assert got.reply_text == "Monday works for me."
    assert got.quoted.startswith("On Mon, 23 Nov 2026 at 10:00, Ana Ruiz") and "> Can you come on Monday?" in got.quoted
    assert "Monday works for me." not in got.quoted
    assert got.body_text.startswith("Monday works for me.") and got.body_html is None and got.attachments == []


def test_no_quote_means_no_quoted_history() -> None:
    got = content_of(b"From: a@example.org\r\nSubject: hi\r\n\r\nJust a note.\r\nSecond line.\r\n")
    assert (got.reply_text, got.quoted) == ("Just a note.\nSecond line.", "")


def test_interleaved_answers_keep_every_line_visible() -> None:
    text = "> Can you come Monday?\r\nYes.\r\n> And bring your ID?\r\nSure, I will.\r\n"
    got = content_of(b"From: a@example.org\r\n\r\n" + text.encode())
    assert "Yes." in got.reply_text and "Sure, I will." in got.reply_text
    assert "> Can you come Monday?" in got.quoted and "> And bring your ID?" in got.quoted


def test_html_only_reply_gives_text_and_sanitized_html() -> None:
    raw = html_message('<div dir="ltr">Monday <b>works</b>.</div><div class="gmail_quote">On Mon, Ana wrote:'
                       "<blockquote>Can you come?</blockquote></div>")
    got = content_of(raw)
    assert got.reply_text == "Monday works."
    assert "Can you come?" in got.quoted and "Can you come?" in got.body_text
    assert got.body_html.startswith('<div dir="ltr">Monday <b>works</b>.</div>')
    assert "class=" not in got.body_html


HOSTILE = """<html><head><title>t</title><meta http-equiv="refresh" content="0;url=http://127.0.0.1:9/meta">
<base href="http://127.0.0.1:9/"><link rel="stylesheet" href="http://127.0.0.1:9/link.css">
<style>body { background: url(http://127.0.0.1:9/css) } .overlay { position: fixed }</style></head>
<body onload="alert(1)" background="http://127.0.0.1:9/bg.png">
<script>alert(1)</script><img src="x" onerror="alert(2)">
<a href="javascript:alert(3)">click</a> <a href="JaVaScRiPt:alert(4)">click2</a>
<a href="data:text/html,&lt;script&gt;alert(5)&lt;/script&gt;">data</a> <a href="/logout">relative</a>
<a href="https://example.org/job" onclick="alert(6)">job page</a> <a href="mailto:ana@example.test">mail</a>
<iframe src="http://127.0.0.1:9/frame">frame text</iframe><object data="http://127.0.0.1:9/obj">o</object>
<embed src="http://127.0.0.1:9/embed"><svg onload="alert(7)"><circle r="5"/></svg>
<div style="position:fixed;top:0;left:0;width:100%;height:100%;background:url(http://127.0.0.1:9/div)"
 class="flash" id="reply" name="querySelectorAll">overlay</div>
<form action="http://127.0.0.1:9/form"><input name="password"><button>Send</button></form>
<img src="http://127.0.0.1:9/track.png" alt="tracker" width="1"><img src="//127.0.0.1:9/schemeless.png">
<img src="data:image/png;base64,iVBORw0KGgo="><h1>Big heading</h1><p>Kind regards</p>
<math><mi>x</mi></math><textarea>typed</textarea><!-- <script>alert(8)</script> -->
</body></html>"""


@pytest.mark.parametrize("images", [False, True])
def test_hostile_html_is_cleaned(images: bool) -> None:
    got = content_of(html_message(HOSTILE), images=images)
    html = got.body_html.lower()
    for bad in ("<script", "alert(", "onerror", "onload", "onclick", "javascript:", "data:", "<iframe", "<object",
                "<embed", "<svg", "<style", "<form", "<input", "<button", "<meta", "<base", "<link", "<textarea",
                "<math", "style=", "class=", "id=", "name=", "background", "/logout", "<!--", "<h1", "<title"):
        assert bad not in html, bad
    assert set(re.findall(r"127\.0\.0\.1:9/[\w.]+", html)) == ({"127.0.0.1:9/track.png", "127.0.0.1:9/schemeless.png"}
                                                            if images else set())
    assert got.has_remote_images
    assert 'href="https://example.org/job"' in html and 'rel="noopener noreferrer"' in html
    assert 'href="mailto:ana@example.test"' in html
    assert "<h2>big heading</h2>" in html and "kind regards" in html and "overlay" in html
    assert 'alt="tracker"' in html
    assert ("http://127.0.0.1:9/track.png" in html) is images
    assert ("//127.0.0.1:9/schemeless.png" in html) is images


def test_page_without_remote_images_says_so() -> None:
    got = content_of(html_message('<p>Hi</p><img src="cid:none@x" alt="logo">'))
    assert not got.has_remote_images and got.body_html == '<p>Hi</p><img alt="logo">'


def test_cid_images_point_at_their_attachment() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    raw = mime(
        'Content-Type: multipart/related; boundary="R"\r\n\r\n'
        '--R\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Logo:</p><img src="cid:Logo@Example" alt="logo">'
        '<img src="cid:unknown@x" alt="gone">\r\n'
        f"--R\r\nContent-Type: image/png\r\nContent-ID: <logo@example>\r\nContent-Transfer-Encoding: base64\r\n"
        f"\r\n{png}\r\n--R--")
    got = content_of(raw, cid_url=lambda index: f"/messages/7/attachments/{index}")
    assert got.body_html == ('<p>Logo:</p><img src="/messages/7/attachments/0" alt="logo"><img alt="gone">')
    assert not got.has_remote_images
    assert got.attachments[0].content_id == "logo@example" and got.attachments[0].content_type == "image/png"
    without_urls = content_of(raw)
    assert "src=" not in without_urls.body_html


def test_attachments_listed_and_read_back() -> None:
    raw = mime(TEXT_REPLY,
               "Content-Type: application/pdf\r\nContent-Disposition: attachment; "
               "filename*=UTF-8''Lebenslauf%20M%C3%BCller.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK",
               'Content-Type: text/html\r\nContent-Disposition: attachment; filename="..\\\\..\\\\evil.html"\r\n\r\n'
               "<script>alert(1)</script>",
               "Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nnotes",
               "Content-Type: message/rfc822\r\n\r\nFrom: x@example.org\r\nSubject: fwd\r\n\r\ninner body")
    got = content_of(raw)
    assert [(a.index, a.name, a.content_type) for a in got.attachments] == [
        (0, "Lebenslauf Müller.pdf", "application/pdf"), (1, "evil.html", "text/html"),
        (2, "attachment-3.txt", "text/plain"), (3, "attachment-4.eml", "message/rfc822")]
    assert got.reply_text == "Monday works for me."  # attached text is not the body
    assert "inner body" not in got.body_text  # a forwarded message is an attachment, not this mail's text
    found, data = attachment(raw, 0)
    assert (found.size, data) == (9, b"%PDF-1.4\n")
    assert attachment(raw, 3)[1].endswith(b"inner body")
    with pytest.raises(NotFound):
        attachment(raw, 4)
    with pytest.raises(NotFound):
        attachment(raw, -1)


def test_html_like_types() -> None:
    for kind in ("text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "text/javascript"):
        assert is_html_like(kind), kind
    for kind in ("application/pdf", "image/png", "text/plain", "application/octet-stream"):
        assert not is_html_like(kind), kind


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage without headers",
    b"Content-Type: multipart/mixed; boundary=X\r\n\r\nno parts at all",
    b"Content-Type: multipart/mixed\r\n\r\n--X\r\nbroken",
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64===",
    b"Content-Type: text/html; charset=no-such-charset\r\n\r\n<p>Caf\xe9</p>",
    b"Content-Type: text/plain; charset=\"\r\nContent-Disposition: attachment; filename=\r\n\r\nx",
    b"Content-Type: multipart/alternative; boundary=\"A\"\r\n\r\n--A\r\nContent-Type: text/html\r\n\r\n<p>unclosed <b>"
    b"<table><tr><td>cell\r\n",
    b"Content-Type: image/png\r\nContent-ID: <>\r\n\r\n\x89PNG",
    b"Content-Type: multipart/mixed; boundary=\"A\"\r\n\r\n" + b"--A\r\n\r\n" * 3000 + b"--A--\r\n",
])
def test_malformed_mime_never_raises(raw: bytes) -> None:
    got = content_of(raw)
    assert isinstance(got.body_text, str) and isinstance(got.reply_text, str)
    for a in got.attachments:
        assert attachment(raw, a.index)[0] == a


def test_unknown_charset_still_reads() -> None:
    got = content_of(b"Content-Type: text/html; charset=no-such-charset\r\n\r\n<p>Caf\xe9 ok</p>")
    assert got.body_html == "<p>Caf\u00e9 ok</p>" and got.reply_text == "Caf\u00e9 ok"


def test_declared_multipart_without_parts_is_read_as_text() -> None:
    got = content_of(b"Content-Type: multipart/mixed; boundary=X\r\n\r\nthe only text there is")
    assert got.reply_text == "the only text there is" and got.attachments == []


def test_headers_and_reply_references() -> None:
    raw = (b"From: a@example.org\r\nTo: =?utf-8?q?Ana_Ru=C3=ADz?= <jobs+1042@example.test>\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <C1@Example.org>\r\n"
           b"References: <a@x>\r\n <b@y> <a@x>\r\n\r\nhi")
    got = headers_of(raw)
    assert got.to == "Ana Ruíz <jobs+1042@example.test>" and got.date.startswith("Mon, 23 Nov 2026")
    assert (got.message_id, got.references) == ("<C1@Example.org>", ("<a@x>", "<b@y>"))
    assert reply_references(got) == ("<a@x>", "<b@y>", "<C1@Example.org>")
    many = b" ".join(b"<%d@x>" % i for i in range(50))
    long = headers_of(b"Message-ID: <last@x>\r\nReferences: " + many + b"\r\n\r\n")
    refs = reply_references(long)
    assert len(refs) == 20 and refs[0] == "<0@x>" and refs[-2:] == ("<49@x>", "<last@x>")
    assert headers_of(b"") == headers_of(b"\xff\xfe")
