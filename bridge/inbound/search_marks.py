"""The matched words of a search result marked for the page: one function for both databases.

Message text is hostile: every piece of it is HTML-escaped here, and the only markup in what this returns
is the `<mark>` elements made here, so the page may show it as it is (a Markup) while everything else on
the page stays autoescaped. A word is marked when the search matched it: one of the searched words, or
beginning with the last one, compared as the index compares them (bridge.inbound.search.matches).
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from bridge.inbound.search import matches

_WORD = re.compile(r"[^\W_]+")
SNIPPET_WORDS = 30  # words of the reply text shown around its first match
SNIPPET_CHARS = 300


def highlight(value: str | None, terms: list[str]) -> Markup:
    """`value` escaped, with each word the search matched in <mark>."""
    value = value or ""
    match = matches(terms)
    out: list[str] = []
    at = 0
    for word in _WORD.finditer(value):
        if match(word.group()):
            out += [str(escape(value[at:word.start()])), "<mark>", str(escape(word.group())), "</mark>"]
            at = word.end()
    out.append(str(escape(value[at:])))
    return Markup("".join(out))  # noqa: S704 - built above from escaped text and our own <mark> tags only


def snippet(value: str | None, terms: list[str]) -> Markup:
    """A short piece of `value` around its first matching word (its start when none matches), marked."""
    value = " ".join((value or "").split())
    match = matches(terms)
    found = list(_WORD.finditer(value))
    first = next((i for i, w in enumerate(found) if match(w.group())), 0)
    start_word = max(first - SNIPPET_WORDS // 3, 0)
    start = found[start_word].start() if start_word > 0 else 0
    piece = value[start:start + SNIPPET_CHARS]
    if start + SNIPPET_CHARS < len(value):
        piece = piece.rsplit(" ", 1)[0] if " " in piece else piece
    lead, tail = ("… " if start > 0 else ""), (" …" if start + len(piece) < len(value) else "")
    return Markup(escape(lead)) + highlight(piece, terms) + Markup(escape(tail))
