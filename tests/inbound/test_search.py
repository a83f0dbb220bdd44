"""Full-text search over inbound messages (bridge.inbound.search), on SQLite (FTS5) and PostgreSQL (tsvector):
what it finds, in which order, for whom, and the marks it puts on the page."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bridge.errors import FieldError
from bridge.inbound import search
from bridge.inbound.search_marks import highlight, snippet
from models import Employee, InboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import ingest_json
from tests.helpers.messages import KNOWN, reply

OTHER = "jobs+2001@example.test"


def with_attachment(mid: str, sender: str, to: str, subject: str, filename: str) -> str:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
            "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find my papers attached.\r\n"
            f"--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''{filename}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n")


def mail(bridge: Bridge) -> dict[str, int]:
    """A small mailbox: employee 1042's, employee 2001's and an Unassigned message; returns ids by name."""
    bridge.run("employee", "add", "--number", "2001", "--name", "Ben Stone", "--email", "ben@example.test")
    sent = {
        "subject": reply("s1@example.com", "Ana López <ana.lopez@example.com>", KNOWN, subject="Interview on Monday",
                         body="See you then.\r\n"),
        "body": reply("b1@firm.example", "Bob Marley <bob@firm.example>", KNOWN, subject="Re: Position",
                      body="Could the interview move to Tuesday?\r\n"),
        "attachment": with_attachment("a1@example.org", "carl@example.org", KNOWN, "Application",
                                      "Lebenslauf_M%C3%BCller.pdf"),
        "unassigned": reply("u1@example.net", "stranger@example.net", "jobs@example.test",
                            subject="Question about an interview", body="Is it remote?\r\n"),
        "other": reply("o1@example.net", "dora@example.net", OTHER, subject="Interview with Ben", body="Fine.\r\n"),
        "script": reply("x1@example.net", "eve@example.net", KNOWN, subject="<script>alert(1)</script> hello",
                        body="<b>bold</b> words\r\n"),
    }
    return {name: ingest_json(bridge, raw)["id"] for name, raw in sent.items()}


def ids(bridge: Bridge, query: str, viewer: search.Viewer | None = None, **filters: object) -> list[int]:
    with Session(bridge.engine()) as session:
        return search.search(session, query, viewer or search.Viewer(admin=True), search.Filters(**filters)).ids


def employee_id(bridge: Bridge, number: int) -> int:
    with Session(bridge.engine()) as session:
        return session.exec(select(Employee.id).where(Employee.number == number)).one()


def test_finds_by_every_field_and_prefix(bridge: Bridge) -> None:
    m = mail(bridge)
    for query in ("ana", "lopez", "example.com", "ana.lopez@example.com", "Ana López"):
        assert ids(bridge, query) == [m["subject"]], query
    assert ids(bridge, "Marley") == [m["body"]]  # the sender's name
    assert ids(bridge, "tuesday") == [m["body"]]  # a word of the reply text
    assert ids(bridge, "lebenslauf") == [m["attachment"]]  # an attachment's file name
    assert ids(bridge, "muller") == ids(bridge, "MÜLLER") == [m["attachment"]]  # diacritics either way
    assert ids(bridge, "tues") == [m["body"]]  # a prefix
    assert set(ids(bridge, "interv")) == {m["subject"], m["body"], m["unassigned"], m["other"]}
    assert ids(bridge, "interview tuesday") == [m["body"]]  # every word is required
    assert ids(bridge, "interview wednesday") == []
    assert ids(bridge, "tuesday interv") == [m["body"]]  # the last word may be the start of one ...
    assert ids(bridge, "interv tuesday") == []  # ... the others are whole words
    assert ids(bridge, "bold") == [m["script"]]


def test_attachment_names_are_filled_after_routing(bridge: Bridge) -> None:
    m = mail(bridge)
    with Session(bridge.engine()) as session:
        assert session.get(InboundMessage, m["attachment"]).attachment_names == "Lebenslauf_Müller.pdf"
        assert session.get(InboundMessage, m["subject"]).attachment_names is None


def test_subject_match_ranks_above_a_text_match_and_newest_first_among_equals(bridge: Bridge) -> None:
    m = mail(bridge)
    found = ids(bridge, "interview", employee_id=employee_id(bridge, 1042))
    assert found == [m["subject"], m["body"]]
    twins = [ingest_json(bridge, reply(f"t{i}@example.org", "twin@example.org", KNOWN, subject="Slot",
                                       body="Same words.\r\n"))["id"] for i in range(3)]
    assert ids(bridge, "slot") == twins[::-1]


def test_a_recruiter_sees_their_own_and_unassigned_an_admin_all(bridge: Bridge) -> None:
    m = mail(bridge)
    recruiter = search.Viewer(admin=False, employee_id=employee_id(bridge, 1042))
    assert set(ids(bridge, "interview", recruiter)) == {m["subject"], m["body"], m["unassigned"]}
    assert ids(bridge, "dora", recruiter) == []
    other = search.Viewer(admin=False, employee_id=employee_id(bridge, 2001))
    assert set(ids(bridge, "interview", other)) == {m["other"], m["unassigned"]}
    assert set(ids(bridge, "interview")) == {m["subject"], m["body"], m["unassigned"], m["other"]}
    assert ids(bridge, "interview", route="unassigned") == [m["unassigned"]]


def test_unrouted_messages_are_not_found(bridge: Bridge) -> None:
    m = mail(bridge)
    with Session(bridge.engine()) as session:
        session.get(InboundMessage, m["body"]).routed_at = None
        session.commit()
    assert ids(bridge, "tuesday") == []


def test_the_index_follows_updates_and_deletes(bridge: Bridge) -> None:
    m = mail(bridge)
    with Session(bridge.engine()) as session:
        session.get(InboundMessage, m["body"]).subject = "Rescheduled"
        session.delete(session.get(InboundMessage, m["other"]))
        session.commit()
    assert ids(bridge, "rescheduled") == [m["body"]]
    assert ids(bridge, "position") == []
    assert ids(bridge, "dora") == []


@pytest.mark.parametrize("query, why", [
    ("", "type a word"), ("  !!! ", "type a word"), ("x" * 201, "at most 200 characters"),
    (" ".join(f"w{i}" for i in range(21)), "at most 20"),
])
def test_bad_queries_are_refused(query: str, why: str) -> None:
    with pytest.raises(FieldError, match=why) as raised:
        search.words(query)
    assert raised.value.field == "q"


def test_highlight_escapes_the_text_and_marks_prefixes() -> None:
    marked = highlight("<script>alert(1)</script> Interviews & Ínterim", ["interv", "INTE"])
    assert str(marked) == ("&lt;script&gt;alert(1)&lt;/script&gt; <mark>Interviews</mark> &amp; "
                           "<mark>Ínterim</mark>")
    assert str(highlight("<b>x</b>", ["b"])) == "&lt;<mark>b</mark>&gt;x&lt;/<mark>b</mark>&gt;"
    assert str(highlight("Interviews and interview", ["interview", "an"])) == (  # whole words but the last
        "Interviews <mark>and</mark> <mark>interview</mark>")


def test_snippet_is_short_and_around_the_first_match() -> None:
    text = " ".join(f"word{i}" for i in range(200)) + " the <i>interview</i> is on Monday " + "tail " * 100
    piece = str(snippet(text, ["interview"]))
    assert "<mark>interview</mark>" in piece and "&lt;i&gt;" in piece and "<i>" not in piece
    assert piece.startswith("… ") and piece.endswith(" …") and len(piece) < 400
    assert str(snippet("no match here", ["zzz"])) == "no match here"


def test_only_the_newest_matches_are_ranked_and_the_cap_is_told(bridge: Bridge,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "RANKED", 5)
    best = ingest_json(bridge, reply("old@example.org", "p@example.org", KNOWN, subject="Bulk bulk bulk",
                                     body="bulk\r\n"))["id"]
    newer = [ingest_json(bridge, reply(f"n{i}@example.org", "p@example.org", KNOWN, subject="Re: x",
                                       body=f"bulk and more words {i}\r\n"))["id"] for i in range(5)]
    with Session(bridge.engine()) as session:
        found = search.search(session, "bulk", search.Viewer(admin=True), limit=3)
        assert found.capped and found.more and set(found.ids) <= set(newer) and best not in found.ids
        rest = search.search(session, "bulk", search.Viewer(admin=True), limit=3, offset=3)
        assert not rest.more and set(found.ids + rest.ids) == set(newer)
        assert search.search(session, "bulk", search.Viewer(admin=True), offset=5).ids == []
        assert not search.search(session, "bulk", search.Viewer(admin=True, employee_id=None),
                                 search.Filters(route="unassigned")).capped


def test_both_databases_fold_every_latin_letter_alike(bridge: Bridge) -> None:
    """Each accented Latin letter alone as a word: the letter as typed and its bare form both find it, on
    SQLite (unicode61's folding) and on PostgreSQL (inbound_search_text: NFD with the marks dropped)."""
    letters = "áàâäãåāăąçćčďđéèêëēėęěğíìîïīįıľłñńňóòôöõőøřśšşťúùûüūůűųýÿźżžÆæŒœÞþðẞß"
    word = {letter: f"zq{letter}zq" for letter in letters}
    raw = reply("fold@example.com", "fold@example.com", KNOWN, subject="Letters", body=" ".join(word.values()))
    found = ingest_json(bridge, raw)["id"]
    bridge.run("worker", "--once")  # the reply text is indexed once it is filled
    missed = [letter for letter in letters if ids(bridge, word[letter]) != [found]]
    assert missed == []
    bare = [letter for letter in letters if ids(bridge, f"zq{search.fold(letter)}zq") != [found]]
    assert bare == []
