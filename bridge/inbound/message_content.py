"""What a stored message says, made safe to show: the reply text, the quoted history, the sanitized HTML
and the attachments of its raw bytes.

Candidate mail is hostile input shown inside a signed-in page. The HTML is cleaned with nh3 against an
explicit allow-list: no script, style, frames, forms, event handlers, `style`/`class`/`id`/`name`
attributes (no CSS tricks, no clobbering of the page's own elements), no `javascript:`/`data:`/relative
URLs. Remote images are tracking beacons: their `src` is dropped unless the reader asked for images.
`cid:` images point at the message's own attachment. Nothing here raises on broken MIME: what cannot be
read is left out. The page and the HTTP API both use these functions, so both show the same thing.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import email.utils
import mimetypes
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

import nh3

from bridge.errors import NotFound
from bridge.inbound.parse import decode, read_headers, too_complex
from routing.reply_text import extract_reply, html_to_text

__all__ = ["Attachment", "Headers", "MessageContent", "attachment", "attachment_names", "content_of", "headers_of",
           "is_html_like", "reply_references", "reply_text"]

MAX_BODY_CHARS = 2_000_000  # as bridge.inbound.parse: more is not a person's message
MAX_REFERENCES = 20  # References we carry on in a reply: the thread's start and its latest messages

TAGS = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup",
    "dd", "del", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strike", "strong",
    "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
})
# Dropped with everything inside: their content is code, not text (or a control a reader could mistake).
DROP_WITH_CONTENT = frozenset({
    "script", "style", "title", "head", "noscript", "template", "iframe", "frame", "frameset", "noframes",
    "object", "embed", "applet", "svg", "math", "textarea", "select", "option", "button", "xmp", "noembed",
})
_CELL = {"colspan", "rowspan", "align", "valign", "width", "height"}
_TABLE_PART = {"align", "valign"}
ATTRIBUTES: dict[str, set[str]] = {
    "*": {"title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "table": {"border", "cellpadding", "cellspacing", "width", "align", "summary"},
    "td": _CELL, "th": _CELL | {"scope"},
    "tr": _TABLE_PART, "thead": _TABLE_PART, "tbody": _TABLE_PART, "tfoot": _TABLE_PART,
    "col": {"span", "width"}, "colgroup": {"span", "width"},
    "ol": {"start", "type"}, "time": {"datetime"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})  # nh3 drops any other scheme first
_URL_ATTRIBUTES = frozenset({"href", "src"})
_HEADING_1 = re.compile(r"<(/?)h1>")  # the page's own <h1> is the subject: the message's headings go one down
_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_HTML_LIKE = ("html", "xml", "svg", "javascript", "ecmascript", "x-mixed-replace")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MSG_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_NAMED = re.compile(rb"name\*?[0-9]*\*?\s*=", re.IGNORECASE)  # a filename= or name= parameter, RFC 2231 too


@dataclass(frozen=True)
class Attachment:
    index: int
    name: str
    content_type: str
    size: int
    content_id: str | None


@dataclass(frozen=True)
class MessageContent:
    reply_text: str  # the new text without quoted history
    quoted: str  # the quoted history ('' when none)
    body_text: str  # the whole text/plain body (or the text of the HTML when there is none)
    body_html: str | None  # sanitized with nh3; None when the message has no HTML part
    has_remote_images: bool  # the HTML referenced http(s) images (blocked unless images=True)
    attachments: list[Attachment]


@dataclass(frozen=True)
class Headers:
    """The header values a reader sees and a reply needs, decoded to text."""

    to: str
    cc: str
    date: str
    message_id: str | None  # as the sender wrote it (In-Reply-To of our reply)
    references: tuple[str, ...]  # the sender's References, in order


def reply_text(stored: str | None, raw: bytes) -> str:
    """The stored reply text, or, before routing's reader has filled it in (bridge.inbound.pipeline.
    fill_reply_texts) or where that failed, the one read from the raw bytes now."""
    return stored or content_of(raw).reply_text


def content_of(raw: bytes, *, images: bool = False, cid_url: Callable[[int], str] | None = None) -> MessageContent:
    """Everything a reader sees of a message; never raises on malformed MIME. A message too complex to read
    (bridge.inbound.parse.too_complex) is shown as a notice at once rather than parsed on every view."""
    why = too_complex(raw)
    if why is None:
        try:
            return _content(raw, images, cid_url)
        except RecursionError:
            why = "its MIME structure is nested too deep"
    notice = f"This message is not shown: {why}. It is kept exactly as received (Raw source)."
    return MessageContent(reply_text=notice, quoted="", body_text=notice, body_html=None, has_remote_images=False,
                          attachments=[])


def _content(raw: bytes, images: bool, cid_url: Callable[[int], str] | None) -> MessageContent:
    msg = _parse(raw)
    texts: list[str] = []
    htmls: list[str] = []
    found: list[Attachment] = []
    for part, is_body in _leaves(msg):
        try:
            if is_body:
                (htmls if part.get_content_type() == "text/html" else texts).append(_text_of(part))
            else:
                found.append(_describe(part, len(found)))
        except Exception:  # noqa: BLE001, S112 - one unreadable part must not hide the others
            continue
    text = "\n".join(texts)[:MAX_BODY_CHARS]
    html = "\n".join(htmls)[:MAX_BODY_CHARS] if htmls else None
    body_text = text if text.strip() or html is None else html_to_text(html)
    reply = extract_reply(text or None, html)
    remote: list[str] = []
    body_html = _sanitize(html, images, cid_url, found, remote) if html is not None else None
    return MessageContent(reply_text=reply, quoted=_quoted(body_text, reply), body_text=body_text,
                          body_html=body_html, has_remote_images=bool(remote), attachments=found)


def attachment(raw: bytes, index: int) -> tuple[Attachment, bytes]:
    """One attachment (as `content_of` numbers them) and its decoded bytes; NotFound for a wrong index."""
    if too_complex(raw) is not None:
        raise NotFound(f"no attachment {index} in this message (it is too complex to read)")
    msg = _parse(raw)
    count = 0
    for part, is_body in _leaves(msg):
        if is_body:
            continue
        try:
            described = _describe(part, count)
        except Exception:  # noqa: BLE001, S112 - skipped alike in content_of
            continue
        if count == index:
            return described, _payload(part)
        count += 1
    raise NotFound(f"no attachment {index} in this message")


def attachment_names(raw: bytes) -> str | None:
    """The file names the message's parts carry, one a line (what search reads), or None when there are none.
    The standard library's parse (compat32, the quicker), only for a message that names a file at all."""
    if _NAMED.search(raw) is None or too_complex(raw) is not None:
        return None
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        names = [_CONTROL.sub(" ", _filename(part)).strip() for part, is_body in _leaves(msg) if not is_body]
    except Exception:  # noqa: BLE001 - a message we cannot read names no file
        return None
    return "\n".join(dict.fromkeys(n for n in names if n)) or None


def headers_of(raw: bytes) -> Headers:
    """To, Cc, Date, Message-ID and References as text; empty values where the header is missing or broken."""
    try:
        msg = read_headers(raw)
    except Exception:  # noqa: BLE001
        return Headers("", "", "", None, ())

    def value(name: str) -> str:
        found = msg.get(name)
        return decode(found) if found is not None else ""

    mid = _MSG_ID.search(value("Message-ID"))
    references = tuple(dict.fromkeys(_MSG_ID.findall(" ".join(decode(v) for v in msg.get_all("References") or []))))
    return Headers(to=value("To"), cc=value("Cc"), date=value("Date"), message_id=mid.group(0) if mid else None,
                   references=references)


def reply_references(headers: Headers) -> tuple[str, ...]:
    """References of a reply to this message (RFC 5322 3.6.4): its References, then its Message-ID, bounded."""
    ids = [*headers.references, *([headers.message_id] if headers.message_id else [])]
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return tuple(ids)


def is_html_like(content_type: str) -> bool:
    """Types a browser could render as a page (and so run script in): served as octet-stream."""
    return any(word in content_type for word in _HTML_LIKE)


# --- MIME ---------------------------------------------------------------------------------------


def _parse(raw: bytes) -> Message:
    try:
        return email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # noqa: BLE001 - the parser is lenient; this is the last resort
        return email.message_from_bytes(raw, policy=email.policy.compat32)


def _leaves(msg: Message) -> Iterator[tuple[Message, bool]]:
    """Every leaf part in order, and whether it is body text (inline text/plain or text/html, no filename).

    A forwarded message (message/rfc822) is one attachment, not opened: its parts are not this mail's.
    """
    stack = [msg]
    seen = 0
    while stack:
        part = stack.pop()
        seen += 1
        if seen > 10_000:  # a bomb of empty parts
            return
        try:
            kind = part.get_content_type()
            if part.is_multipart() and kind != "message/rfc822":
                children = part.get_payload()
                stack.extend(reversed([c for c in children if isinstance(c, Message)]))
                continue
            if kind.startswith("multipart/"):  # declared multipart, but no parts could be found: read it as text
                yield part, True
                continue
            yield part, _is_body(part, kind)
        except Exception:  # noqa: BLE001, S112 - a part we cannot even classify is left out
            continue


def _is_body(part: Message, kind: str) -> bool:
    if kind not in ("text/plain", "text/html"):
        return False
    if part.get_content_disposition() == "attachment":
        return False
    return not _filename(part)


def _filename(part: Message) -> str:
    name = None
    with contextlib.suppress(Exception):
        name = part.get_filename() or part.get_param("name")
    if isinstance(name, tuple):  # an RFC 2231 value the policy left undecoded
        name = email.utils.collapse_rfc2231_value(name)
    return decode(name) if name else ""


def _payload(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822" or part.is_multipart():
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        if isinstance(inner, Message):
            with contextlib.suppress(Exception):
                return inner.as_bytes(policy=email.policy.compat32)
        return b""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _text_of(part: Message) -> str:
    data = _payload(part)
    charset = "utf-8"
    with contextlib.suppress(Exception):
        charset = part.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset, "replace")
    except LookupError:  # an unknown charset: UTF-8 if it is that, else Windows' Latin-1 shows most of it
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    return text.replace("\x00", "")


def _describe(part: Message, index: int) -> Attachment:
    kind = part.get_content_type()
    kind = kind if _MIME_TYPE.match(kind) else "application/octet-stream"
    header = part.get("Content-ID")
    cid = str(header).strip().strip("<>").strip() if header is not None else ""
    return Attachment(index=index, name=_safe_name(_filename(part), kind, index), content_type=kind,
                      size=len(_payload(part)), content_id=cid or None)


def _safe_name(name: str, kind: str, index: int) -> str:
    """A file name without a path or control characters; made up from the type when there is none."""
    name = _CONTROL.sub("", name).replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")[:200]
    if name:
        return name
    ext = ".eml" if kind == "message/rfc822" else (mimetypes.guess_extension(kind) or ".bin")
    return f"attachment-{index + 1}{ext}"


# --- text ---------------------------------------------------------------------------------------


def _quoted(whole: str, reply: str) -> str:
    """The lines of the whole text that are not the reply: the quoted history, signature and such.

    The reply's lines are found in order in the whole text (both compared stripped, as the reply text
    module compares them); what is left over, in its order, is the history.
    """
    lines = [line.strip() for line in whole.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    wanted = [line.strip() for line in reply.split("\n") if line.strip()]
    if not wanted:
        return ""
    used = [False] * len(lines)
    at = 0
    for line in wanted:
        for index in range(at, len(lines)):
            if lines[index] == line:
                used[index] = True
                at = index + 1
                break
    rest = "\n".join(line for line, is_reply in zip(lines, used, strict=True) if not is_reply)
    return re.sub(r"\n{3,}", "\n\n", rest).strip()


# --- HTML ---------------------------------------------------------------------------------------


def _sanitize(html: str, images: bool, cid_url: Callable[[int], str] | None, found: list[Attachment],
              remote: list[str]) -> str:
    """nh3 with the allow-list; remote images noted in `remote` (and kept only with `images`)."""
    by_cid = {a.content_id.lower(): a.index for a in found if a.content_id}

    def url_filter(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in _URL_ATTRIBUTES:
            return value
        url = value.strip()
        scheme = urlsplit(url).scheme.lower() if "://" in url or ":" in url.split("/", 1)[0] else ""
        if scheme == "cid":
            index = by_cid.get(url[4:].strip().strip("<>").lower())
            return cid_url(index) if index is not None and cid_url is not None else None
        remote_url = scheme in ("http", "https") or url.startswith("//")
        if tag == "img" and attribute == "src":
            if not remote_url:
                return None  # relative: it would load from this site
            remote.append(url)
            return url if images else None
        if attribute == "href" and (remote_url or scheme in ("mailto", "tel")):
            return url
        return None

    try:
        cleaned = nh3.clean(html, tags=set(TAGS), clean_content_tags=set(DROP_WITH_CONTENT), attributes=ATTRIBUTES,
                            attribute_filter=url_filter, url_schemes=set(URL_SCHEMES), strip_comments=True,
                            link_rel="noopener noreferrer", set_tag_attribute_values={"a": {"target": "_blank"}})
    except Exception:  # noqa: BLE001 - nothing unsanitized is ever shown: the text instead
        return ""
    return _HEADING_1.sub(r"<\1h2>", cleaned)
