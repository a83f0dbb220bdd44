"""The dedup key's quick read of Message-ID gives exactly what the header parser gives, or defers to it.

Stored keys must never change with how they were read: the same reply seen by SMTP today and by IMAP
after an upgrade has to meet its stored key. So every case is read both ways and compared: the corpus's
real messages and headers built to sit on the edges of the quick path.
"""

from __future__ import annotations

import hashlib

import pytest

from bridge.inbound import parse
from tests.helpers.corpus import CORPUS


def parser_read(raw: bytes) -> tuple[str, str | None]:
    """The key as read by the header parser alone (the quick path switched off)."""
    try:
        mid = parse.message_id_of(str(parse.read_headers(raw).get("Message-ID")))
    except Exception:  # noqa: BLE001 - as dedup_key
        mid = None
    return (mid, mid) if mid else ("sha256:" + hashlib.sha256(raw).hexdigest(), None)


EDGES = [
    b"Message-ID: <a@example.org>\r\n\r\nbody",
    b"Message-ID:<a@example.org>\r\n\r\n",
    b"message-id: \t <A@Example.ORG>  \r\n\r\n",
    b"Message-ID:\r\n <folded@example.org>\r\n\r\n",
    b"Message-ID:\r\n \r\n\t<twice-folded@example.org>\r\nSubject: s\r\n\r\n",
    b"Message-ID: <a@x>\r\n\t(comment) <b@y>\r\n\r\n",
    b"Subject: x\r\nMessage-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n",
    b"Message-ID-Extra: <no@x>\r\n\r\n",
    b"X-Message-ID: <no@x>\r\nSubject: s\r\n\r\n",
    b"Subject: s\nMessage-ID: <lf@x>\n\nbody",
    b"Subject: s\r\nMessage-ID: <mixed@x>\n\r\n",
    b"From sender@x Mon Jan  1 00:00:00 2024\r\nMessage-ID: <mbox@x>\r\n\r\n",
    b"Bad line without colon\r\nMessage-ID: <after@x>\r\n\r\n",
    b" continuation first\r\nMessage-ID: <c@x>\r\n\r\n",
    b"Subject: caf\xc3\xa9\r\nMessage-ID: <eight@x>\r\n\r\n",
    b"Message-ID: <eight\xff@x>\r\n\r\n",
    b"Subject: a\rb\r\nMessage-ID: <cr@x>\r\n\r\n",
    b"Message-ID: no brackets@x\r\n\r\n",
    b"Message-ID: <>\r\n\r\n",
    b"Message-ID: <a@x>",
    b"Subject: no id\r\n\r\n",
    b"",
    b"\r\n\r\nMessage-ID: <in-body@x>\r\n",
    b"Message-ID : <space@x>\r\n\r\n",
    b"Message-ID: <a@x>\r\nX-Pad: " + b"p" * 70_000 + b"\r\n\r\n",
]


@pytest.mark.parametrize("raw", EDGES, ids=range(len(EDGES)))
def test_edges_read_as_the_parser_reads_them(raw: bytes) -> None:
    assert parse.dedup_key(raw) == parser_read(raw)


def test_plain_headers_take_the_quick_path() -> None:
    assert parse._plain_message_id(EDGES[0]) == "<a@example.org>"
    assert parse._plain_message_id(EDGES[3]) == "\r\n <folded@example.org>"
    assert parse._plain_message_id(EDGES[12]) is parse._UNSURE  # the parser's own rules for broken blocks


def test_the_corpus_reads_the_same_both_ways() -> None:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".csv" and p.name != "README.md")
    if not files:
        pytest.skip("the shared mail corpus is not here (../shared/corpus)")
    quick = 0
    for path in files:
        raw = path.read_bytes()
        assert parse.dedup_key(raw) == parser_read(raw), path.name
        quick += parse._plain_message_id(raw) is not parse._UNSURE
    assert quick > len(files) // 4, quick  # the quick path is taken for ordinary mail, not only tested
