"""The reply text of a message: what the candidate wrote, without quoted history and signature.

Stored beside the full message so a recruiter sees the new text first; the full message is never
replaced, so a wrong cut costs readability, not information. Quote headers are found by
`mail-parser-reply` (patterns of many mail clients in many languages); this module is the glue:

- text/plain is preferred; HTML-only mail is turned into text with the standard library's
  `html.parser`, dropping Gmail's quote block, Outlook's reply header and what follows it, and
  rendering `<blockquote>` as `> ` lines so that the text rules remove it;
- line endings are normalised and the work is bounded: 200 KB of text, a quote header is looked
  for in the first 32 KB, and lines over 200 characters are hidden from the library's regexes
  (their cost grows with the square of the line length);
- a "From:"-style header needs two header lines (the library's Polish pattern takes one line,
  so "Data: ..." in an English reply would cut it);
- two strict, language-neutral fallbacks for quote headers the library's languages miss: a short
  dated attribution with a bracketed address ending in ":" ("30.09.2017, 18:30, X <x@y.z>:"), and
  a block of "Label: value" lines with an address ("De : ...", "Fra: ...");
- `> ` lines left in the reply, the RFC 3676 `-- ` signature, "Sent from my ..." footers and
  separator lines left at the end are removed;
- anything that goes wrong, or an empty result, falls back to the whole text, stripped.

Sign-offs such as "Thanks,\nAlex" are kept on purpose: the library's own signature rule cuts at
words like "Thanks," and would drop "Thanks, I accept the offer" from a reply.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from html.parser import HTMLParser

from mailparser_reply import EmailMessage, EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES

__all__ = ["DEFAULT_LANGUAGES", "extract_reply", "html_to_text"]

DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "nl", "it", "pt", "sv", "pl")

MAX_TEXT_CHARS = 200_000  # text considered at all; beyond this a "reply" is not a human reply
MAX_HTML_CHARS = 1_000_000  # HTML carries styles, markup and inline images; the reply is at the top
MAX_HTML_TAGS = 20_000  # html.parser is pure Python: tag-dense input is what costs time
SCAN_CHARS = 32_000  # the quote header must appear within this much of the (normalised) text
MAX_LINE = 200  # longer lines are masked: the library's header regexes are quadratic per line

# Private-use characters: they mark masked lines and HTML separators and never reach the caller.
_MASK = "\ue000"
_SEP = "\ue001"
_PRIVATE = re.compile("[\ue000-\ue01f]")
_MASKED = re.compile(_MASK + "([\ue010-\ue019]+)" + _MASK)
_DIGITS_TO_PRIVATE = str.maketrans("0123456789", "".join(chr(0xE010 + d) for d in range(10)))
_PRIVATE_TO_DIGITS = str.maketrans("".join(chr(0xE010 + d) for d in range(10)), "0123456789")

_QUOTED = re.compile(r"^\s*>")
_DATE_OR_TIME = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\b\d{1,2}:\d{2}\b|\b(?:19|20)\d{2}\b")
_HEADER_LIKE = re.compile(r"^[*\s]*[^\W\d_][^\W\d_-]*(?:[ -][^\W\d_]+){0,3}\s*:(?!//)")
_BRACKETED_ADDRESS = re.compile(r"[<(\[]\s*(?:mailto:)?[^\s@<>()\[\]]+@[^\s@<>()\[\]]+\.[^\s@<>()\[\]]+\s*[>)\]]")
_SEPARATOR_LINE = re.compile(r"^\s*(?:[-_=*~]{2,}|-{2,}\s*[^-\n]{1,40}?\s*-{2,})\s*$")
_SIG_DELIMITER = re.compile(r"^(?:--|__)[ \t]*$", re.MULTILINE)  # RFC 3676 "-- " once lines are stripped
_SEPARATOR = re.compile(r"(?<=\n\n)[-_]{32,}[ \t]*$", re.MULTILINE)  # Outlook-style rule after a blank line
_BLANK_RUNS = re.compile(r"\n{3,}")

_SKIP_ALWAYS = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "object", "xml"})
_VOID = frozenset(
    {"br", "hr", "img", "meta", "link", "input", "wbr", "area", "base", "col", "embed", "source", "track", "param"}
)
_LINE_BLOCKS = frozenset(
    {
        "div",
        "li",
        "tr",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "aside",
        "center",
        "form",
        "fieldset",
        "address",
        "figure",
        "figcaption",
        "caption",
        "main",
        "details",
        "summary",
    }
)
_PARAGRAPH_BLOCKS = frozenset({"p", "table", "ul", "ol", "dl", "pre", "h1", "h2", "h3", "h4", "h5", "h6"})
# Quoted history and signatures that clients mark in their HTML (strip mode only).
_SKIP_CLASSES = frozenset(
    {"gmail_quote", "gmail_quote_container", "gmail_signature", "moz-cite-prefix", "moz-signature", "yahoo_quoted"}
)
_STOP_IDS = frozenset({"divrplyfwdmsg", "appendonsend"})
_STOP_CLASSES = frozenset({"outlookmessageheader"})


def extract_reply(
    text: str | None,
    html: str | None = None,
    languages: tuple[str, ...] = DEFAULT_LANGUAGES,
) -> str:
    """The new text of a reply (quotes and signature removed); never raises, "" only for empty input."""
    try:
        plain = _as_str(text)
        if plain.strip():
            return _reply_or_whole(_normalise(plain), languages)
        markup = _as_str(html)
        if markup.strip():
            converted = _strip_markers(_cut_at_reply_header(_render_html(markup, strip_quotes=True)))
            return _reply_or_whole(_normalise(converted), languages, whole=lambda: html_to_text(markup))
        return ""
    except Exception:  # the library or the glue failed: the whole text is still the best answer
        return _safe_whole(text, html)


def html_to_text(html: str) -> str:
    """Readable text from HTML: block and list structure as lines, quotes as `> `, entities decoded."""
    try:
        return _strip_markers(_render_html(_as_str(html), strip_quotes=False))
    except Exception:
        return ""


# --- text ---------------------------------------------------------------------------------------


def _reply_or_whole(normalised: str, languages: tuple[str, ...], whole: Callable[[], str] | None = None) -> str:
    """The reply, or the whole text when nothing is left of it."""
    reply = _reply(normalised, languages)
    if reply:
        return reply
    return (whole() if whole else normalised).strip()


def _reply(normalised: str, languages: tuple[str, ...]) -> str:
    """Cut the quoted history (library, then language-neutral fallbacks) and the signature off the text."""
    masked, long_lines = _mask_long_lines(normalised)
    window = masked
    if len(masked) > SCAN_CHARS:
        window = masked[: masked.rfind("\n", 0, SCAN_CHARS) + 1 or SCAN_CHARS]
    langs = [lang for lang in languages if isinstance(lang, str)]
    body = _library_reply(EmailReplyParser(languages=langs).read(window))
    lines = _cut_history((masked if body is None else body).split("\n"))
    body = "\n".join(line for line in lines if not _QUOTED.match(line))
    body = _drop_trailing_separators(_cut_signature(body, langs))
    body = _MASKED.sub(lambda m: long_lines[int(m.group(1).translate(_PRIVATE_TO_DIGITS))], body)
    return _BLANK_RUNS.sub("\n\n", _strip_markers(body)).strip()


def _library_reply(message: EmailMessage) -> str | None:
    """The text before the first quote header the library found; None when it found none.

    A "From:"-style header must have two header lines: the library's Polish pattern accepts one, so
    a line such as "Data: ..." or "Do: ..." in an English reply would otherwise cut it.
    """
    parts: list[str] = []
    split = False
    for index, reply in enumerate(reply for reply in message.replies if reply.content):
        real = bool(reply.headers) and _is_real_header(reply.headers)
        if index and real:
            split = True
            break
        split = split or real  # a header at the very start: the reply follows the quote (bottom post)
        parts.append(reply.full_body if real else reply.content)
    return "\n".join(parts) if split else None


def _is_real_header(header: str) -> bool:
    lines = [line for line in header.split("\n") if line.strip()]
    if not lines or not _HEADER_LIKE.match(lines[0]):
        return True  # "On ... wrote:", "-----Original Message-----"
    return sum(1 for line in lines if _HEADER_LIKE.match(line)) >= 2


def _cut_history(lines: list[str]) -> list[str]:
    """Cut at quote headers in languages or layouts the library misses (language-neutral, strict).

    - an attribution of at most three lines with a date or time and an address in brackets, ending
      in ":" and followed by a blank or quoted line ("30.09.2017, 18:30, "X" <x@y.z>:");
    - a block of three or more "Label: value" lines with an address in it ("De : ...", "Fra: ..."),
      or two after a separator line such as "-------- Message d'origine --------" or at the very end
      (where the library cut inside the block).
    Only after some text of the reply: at the very top such an attribution just introduces a quote.
    """
    first = next((index for index, line in enumerate(lines) if line.strip()), len(lines))
    for index, line in enumerate(lines):
        if index > first and _starts_header_block(lines, index):
            cut = index - 1 if _SEPARATOR_LINE.match(lines[index - 1]) else index
            if cut > first:
                return lines[:cut]
        if line.rstrip().endswith(":") and (
            index + 1 == len(lines) or not lines[index + 1].strip() or _QUOTED.match(lines[index + 1])
        ):
            start = _attribution_start(lines, index)
            if start is not None and start > first:
                return lines[:start]
            if start == first and index + 1 < len(lines) and _QUOTED.match(lines[index + 1]):
                lines[start : index + 1] = [""] * (index + 1 - start)
    return lines


def _attribution_start(lines: list[str], end: int) -> int | None:
    """The latest start of an attribution of up to three lines ending at `end`, or None."""
    start = end
    while start >= 0 and end - start < 3 and lines[start].strip():
        joined = " ".join(line.strip() for line in lines[start : end + 1])
        if len(joined) <= 400 and _BRACKETED_ADDRESS.search(joined) and _DATE_OR_TIME.search(joined):
            return start
        start -= 1
    return None


def _starts_header_block(lines: list[str], index: int) -> bool:
    if not _HEADER_LIKE.match(lines[index]) or lines[index - 1].strip() and not _SEPARATOR_LINE.match(lines[index - 1]):
        return False
    block: list[str] = []
    for line in lines[index : index + 8]:
        if not line.strip():
            break
        block.append(line)
    after = index + len(block)
    while after < len(lines) and not lines[after].strip():
        after += 1
    at_end = after == len(lines)  # the library cut inside the block
    needed = 2 if at_end or _SEPARATOR_LINE.match(lines[index - 1]) else 3
    return sum(1 for line in block if _HEADER_LIKE.match(line)) >= needed and any("@" in line for line in block)


def _drop_trailing_separators(body: str) -> str:
    """Separator lines ("_____", "-----Ursprüngliche Nachricht-----") left at the end of a cut reply."""
    lines = body.rstrip().split("\n")
    while lines and (not lines[-1].strip() or _SEPARATOR_LINE.match(lines[-1])):
        lines.pop()
    return "\n".join(lines)


def _normalise(text: str) -> str:
    """Bounded, LF-only text with stripped lines and at most two blank lines in a row.

    The library strips lines itself; doing it here keeps its text and ours identical, and short
    blank runs keep its `\\s*^` patterns from backtracking over thousands of empty lines.
    """
    text = text[:MAX_TEXT_CHARS].replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = _PRIVATE.sub("\ufffd", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n\n", text).strip("\n")


def _mask_long_lines(text: str) -> tuple[str, list[str]]:
    """Replace each line longer than MAX_LINE by a short token; no quote header is that long."""
    long_lines: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if len(line) > MAX_LINE:
            lines[index] = _MASK + str(len(long_lines)).translate(_DIGITS_TO_PRIVATE) + _MASK
            long_lines.append(line)
    return "\n".join(lines), long_lines


def _cut_signature(body: str, languages: list[str]) -> str:
    """Cut at the first `-- ` delimiter, Outlook rule or "Sent from my ..." footer."""
    cut = len(body)
    for pattern in (_SIG_DELIMITER, _SEPARATOR, _sent_from(tuple(languages))):
        if pattern is None:
            continue
        match = pattern.search(body)
        if match and match.start() < cut:
            cut = match.start()
    return body[:cut]


_SENT_FROM_CACHE: dict[tuple[str, ...], re.Pattern[str] | None] = {}


def _sent_from(languages: tuple[str, ...]) -> re.Pattern[str] | None:
    """The library's per-language "Sent from my ..." phrases as one whole-line pattern."""
    if languages not in _SENT_FROM_CACHE:
        phrases = [
            MAIL_LANGUAGES[lang]["sent_from"]
            for lang in dict.fromkeys((*languages, "en"))
            if lang in MAIL_LANGUAGES and MAIL_LANGUAGES[lang].get("sent_from")
        ]
        pattern = None
        if phrases:
            alternation = "|".join(f"(?:{phrase})" for phrase in phrases)
            pattern = re.compile(rf"^(?:{alternation})[^\n]{{0,60}}$", re.MULTILINE | re.IGNORECASE)
        _SENT_FROM_CACHE[languages] = pattern
    return _SENT_FROM_CACHE[languages]


def _strip_markers(text: str) -> str:
    return text.replace(_SEP, "")


def _as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value[:MAX_HTML_CHARS]).decode("utf-8", "replace")
    return ""


def _safe_whole(text: object, html: object) -> str:
    try:
        plain = _as_str(text)
        if plain.strip():
            return _strip_markers(_normalise(plain)).strip()
        return html_to_text(_as_str(html)).strip()
    except Exception:
        return ""


# --- HTML ---------------------------------------------------------------------------------------


def _cut_at_reply_header(text: str) -> str:
    """Cut at an HTML separator (`<hr>`, Outlook's top-bordered div) followed by a header block.

    The header block is language-neutral ("From:", "Von:", "От:" ...): two header-like lines among
    the first lines after the separator, the first of them right after it.
    """
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line != _SEP:
            continue
        following = [candidate for candidate in lines[index + 1 : index + 12] if candidate.strip()][:6]
        header_lines = sum(1 for candidate in following if _HEADER_LIKE.match(candidate))
        if following and _HEADER_LIKE.match(following[0]) and header_lines >= 2:
            return "\n".join(lines[:index])
    return text


def _is_line_paragraph(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    """Outlook writes every line as `<p class=MsoNormal>` with zero margins: a line, not a paragraph."""
    return tag == "p" and any(name == "class" and value and "msonormal" in value.lower() for name, value in attrs)


class _Stop(Exception):
    """Raised inside the parser once the rest of the document is quoted history."""


class _TextRenderer(HTMLParser):
    """HTML to lines; in strip mode also drops quoted history that clients mark in the markup."""

    def __init__(self, strip_quotes: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.strip_quotes = strip_quotes
        self.lines: list[str] = []
        self._parts: list[str] = []
        self._quote_depth = 0
        self._pre_depth = 0
        self._skip_tag = ""
        self._skip_depth = 0
        self._lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self._chars = 0
        self._tags = 0

    # output helpers
    def _emit(self, line: str) -> None:
        if self._quote_depth:
            line = ("> " * self._quote_depth + line).rstrip()
        self.lines.append(line)
        self._chars += len(line) + 1
        if self._chars > MAX_TEXT_CHARS:
            raise _Stop

    def _break(self) -> None:
        """End the current line if it has content; a block of only `&nbsp;` is a blank line (Outlook)."""
        raw = "".join(self._parts)
        self._parts = []
        if raw.strip():
            self._emit(raw.strip())
        elif "\xa0" in raw:
            self._emit("")

    def _newline(self) -> None:
        """`<br>`: end the current line even when empty."""
        line = "".join(self._parts).strip()
        self._parts = []
        self._emit(line)

    def _paragraph(self) -> None:
        self._break()
        if self.lines and self.lines[-1].strip("> "):
            self._emit("")

    # parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tags += 1
        if self._tags > MAX_HTML_TAGS:
            self._break()
            raise _Stop
        if self._skip_depth:
            if tag == self._skip_tag and tag not in _VOID:
                self._skip_depth += 1
            elif self._skip_tag == "head" and tag == "body":
                self._skip_depth = 0
            return
        if tag in _SKIP_ALWAYS:
            self._start_skip(tag)
            return
        if self.strip_quotes and self._strip_start(tag, attrs):
            return
        if tag == "br":
            self._newline()
        elif tag == "hr":
            self._paragraph()
            if self.strip_quotes:
                self.lines.append(_SEP)
        elif tag == "blockquote":
            self._paragraph()
            self._quote_depth += 1
        elif tag in ("ul", "ol"):
            self._paragraph()
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            self._break()
            if self._lists and self._lists[-1][0]:
                self._lists[-1][1] += 1
                self._parts.append(f"{self._lists[-1][1]}. ")
            else:
                self._parts.append("- ")
        elif tag in ("td", "th"):
            if "".join(self._parts).strip():
                self._parts.append("  ")
        elif tag == "pre":
            self._paragraph()
            self._pre_depth += 1
        elif tag in _PARAGRAPH_BLOCKS and not _is_line_paragraph(tag, attrs):
            self._paragraph()
        elif tag in _LINE_BLOCKS or tag == "p":
            self._break()

    def _start_skip(self, tag: str) -> None:
        self._break()
        self._skip_tag = tag
        self._skip_depth = 0 if tag in _VOID else 1

    def _strip_start(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        """Strip mode: skip a marked quote/signature element, or stop at Outlook's reply header."""
        values = {name.lower(): (value or "") for name, value in attrs}
        classes = {token.lower() for token in values.get("class", "").split()}
        if values.get("id", "").lower() in _STOP_IDS or classes & _STOP_CLASSES:
            self._break()
            raise _Stop
        if classes & _SKIP_CLASSES:
            self._start_skip(tag)
            return True
        style = values.get("style", "").lower().replace(" ", "")
        if tag == "div" and "border-top" in style and "solid" in style:
            self._paragraph()
            self.lines.append(_SEP)
        return False

    def handle_endtag(self, tag: str) -> None:
        if self._skip_depth:
            if tag == self._skip_tag:
                self._skip_depth -= 1
            return
        if tag == "blockquote":
            self._break()
            self._quote_depth = max(0, self._quote_depth - 1)
            self._paragraph()
        elif tag in ("ul", "ol"):
            self._paragraph()
            if self._lists:
                self._lists.pop()
        elif tag == "pre":
            self._paragraph()
            self._pre_depth = max(0, self._pre_depth - 1)
        elif tag in _PARAGRAPH_BLOCKS and tag != "p":
            self._paragraph()
        elif tag in _LINE_BLOCKS or tag == "p":
            self._break()

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            first, *rest = data.split("\n")
            self._parts.append(first)
            for line in rest:
                self._newline()
                self._parts.append(line)
            return
        collapsed = re.sub(r"[ \t\n\r\f\v]+", " ", data)
        if collapsed != " " or (self._parts and not self._parts[-1].endswith(" ")):
            self._parts.append(collapsed)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.flush_line()

    def flush_line(self) -> None:
        """Emit the pending line (end of input, or the parser gave up)."""
        self._break()


_INVISIBLE = str.maketrans({"\xa0": " ", "\u200b": None, "\u200e": None, "\u200f": None, "\ufeff": None})


def _render_html(html: str, strip_quotes: bool) -> str:
    """Lines of text from HTML; separators stay as marker lines for `_cut_at_reply_header`."""
    renderer = _TextRenderer(strip_quotes)
    try:
        renderer.feed(_PRIVATE.sub("\ufffd", html[:MAX_HTML_CHARS]))
        renderer.close()
    except _Stop:
        pass
    except Exception:  # malformed markup (html.parser raises on some): keep what was rendered so far
        with contextlib.suppress(Exception):
            renderer.flush_line()
    lines = [line.translate(_INVISIBLE).rstrip() for line in renderer.lines]
    text = "\n".join(line if line.strip() else "" for line in lines)
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")
