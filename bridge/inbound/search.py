"""Full-text search over inbound messages, done by the database: the one query the command, the page and
the API run (docs/ARCHITECTURE.md, "Search").

The index is migration 0013's: on SQLite the FTS5 table inbound_search (external content, kept by
triggers), on PostgreSQL the weighted tsvector column search_vector with its GIN index. Both split text
alike, so a query finds the same messages on both. The user's words are split on anything that is not a
letter or digit; all are required, each a whole word except the last, which may be the start of one (as
Algolia's "prefixLast": the word being typed; a prefix of every word would make GIN merge the lists of every
word beginning so, 145 instead of 23 ms for "interview monday" among a million). Results are ranked
(FTS5's bm25 with column weights, PostgreSQL's ts_rank with the column weights A/B/D), newest first among
equals; only routed messages, and only those the viewer may see (a recruiter: their own and the Unassigned
ones; an admin: all).

Ranking is done for the newest RANKED matches: a word found in most of a million messages would
otherwise cost a rank for each of them (seconds), and nobody reads that far; the result says when the
cap was reached, so a page can ask for one more word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session, select

from bridge.errors import FieldError
from models import InboundMessage
from models.search_index import FTS_TABLE, VECTOR_COLUMN

MAX_TERMS = 20
MAX_CHARS = 200
RANKED = 2_000  # matches ranked at most: the newest ones (40 pages of the search page)
FIELD = "q"
PG_WORK_MEM = "16MB"
_WORD = re.compile(r"[^\W_]+")
# bm25 weights of inbound_search's columns in order: from_addr, from_name, subject, reply_text, attachment_names
_BM25 = "5.0, 5.0, 10.0, 1.0, 5.0"


@dataclass(frozen=True)
class Viewer:
    """Whose search it is: an admin sees all messages, anyone else their own and the Unassigned ones."""

    admin: bool
    employee_id: int | None = None


@dataclass(frozen=True)
class Filters:
    """Narrowing a search: one employee's messages (by id), one route (`unassigned`: the open ones)."""

    employee_id: int | None = None
    route: str | None = None


@dataclass(frozen=True)
class Found:
    ids: list[int]  # this page's messages in rank order
    more: bool  # a further page exists
    capped: bool  # more than RANKED messages matched: only the newest RANKED were ranked


def fold(word: str) -> str:
    """A word as the index holds it: lower case, diacritics removed."""
    return "".join(c for c in unicodedata.normalize("NFD", word.lower()) if not unicodedata.combining(c))


def words(query: str) -> list[str]:
    """The query's words (all required; the last may be the start of a word), or a FieldError naming `q` that
    says what is wrong."""
    if len(query) > MAX_CHARS:
        raise FieldError(FIELD, f"the search is too long: at most {MAX_CHARS} characters")
    found = list({fold(w): w for w in _WORD.findall(query)}.values())
    if not found:
        raise FieldError(FIELD, "type a word to search for (letters or digits)")
    if len(found) > MAX_TERMS:
        raise FieldError(FIELD, f"the search has {len(found)} words: at most {MAX_TERMS}")
    return found


def search(session: Session, query: str, viewer: Viewer, filters: Filters = Filters(), *, limit: int = 50,
           offset: int = 0) -> Found:
    """One page of the messages matching `query` that `viewer` may see, best first."""
    terms = words(query)
    if offset >= RANKED:
        return Found([], more=False, capped=True)
    limit = min(limit, RANKED - offset)
    where, params = _filters(viewer, filters)
    params.update(limit=limit + 1, offset=offset, ranked=RANKED)
    if session.get_bind().dialect.name == "sqlite":
        sql = _sqlite(where)
        params["match"] = " ".join('"' + t.replace('"', '""') + '"' for t in terms) + "*"
    else:
        sql = _postgres(where, len(terms))
        params.update({f"t{i}": t for i, t in enumerate(terms)})
        # the GIN index's bitmap of a word in tens of thousands of messages stays exact (the default 4 MB makes
        # it lossy: every row of those pages read and checked again), for this transaction only
        session.connection().execute(text(f"SET LOCAL work_mem = '{PG_WORK_MEM}'"))
        # planned for these words every time: the driver prepares a statement run often, and a plan made once for
        # any words (a rare one: the GIN index) costs 300 ms for a word in most messages (the id index is right)
        session.connection().execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    rows = session.connection().execute(text(sql), params).all()
    matched = rows[0].matched if rows else 0
    return Found([r.id for r in rows[:limit]], more=len(rows) > limit, capped=matched >= RANKED)


def rows_in_order(session: Session, ids: list[int]) -> list[InboundMessage]:
    """The messages of `ids`, in that order."""
    if not ids:
        return []
    found = {m.id: m for m in session.exec(select(InboundMessage).where(InboundMessage.id.in_(ids))).all()}
    return [found[i] for i in ids if i in found]


def _filters(viewer: Viewer, filters: Filters) -> tuple[str, dict[str, object]]:
    where = ["m.routed_at IS NOT NULL"]
    params: dict[str, object] = {}
    if not viewer.admin:
        where.append("(m.employee_id = :viewer OR (m.route = 'unassigned' AND m.employee_id IS NULL))")
        params["viewer"] = viewer.employee_id if viewer.employee_id is not None else -1
    if filters.employee_id is not None:
        where.append("m.employee_id = :employee")
        params["employee"] = filters.employee_id
    if filters.route is not None:
        where.append("m.route = :route")
        params["route"] = filters.route
        if filters.route == "unassigned":
            where.append("m.triage = 'open'")
    return " AND ".join(where), params


def _sqlite(where: str) -> str:
    """FTS5 finds the matches newest first (by rowid, the id) and ranks the newest RANKED with bm25 (lower is
    better); the page is the best of those."""
    return f"""
SELECT s.id, count(*) OVER () AS matched FROM (
  SELECT {FTS_TABLE}.rowid AS id, bm25({FTS_TABLE}, {_BM25}) AS score
  FROM {FTS_TABLE} JOIN inbound_message m ON m.id = {FTS_TABLE}.rowid
  WHERE {FTS_TABLE} MATCH :match AND {where}
  ORDER BY {FTS_TABLE}.rowid DESC LIMIT :ranked
) s JOIN inbound_message m ON m.id = s.id
ORDER BY s.score, m.received_at DESC, m.id DESC LIMIT :limit OFFSET :offset"""


def _last(i: int, count: int) -> str:
    """The last word is a prefix (to_tsquery's `:*`); the others whole words."""
    return " || ':*'" if i == count - 1 else ""


def matches(terms: list[str]) -> Callable[[str], bool]:
    """Whether a word of a message is one the search matched (for the marks on the page): equal to one of the
    words, or beginning with the last, compared as the index compares them (`fold`)."""
    folded = [fold(t) for t in terms]
    whole, last = set(folded[:-1]), folded[-1] if folded else None

    def match(word: str) -> bool:
        f = fold(word)
        return f in whole or (last is not None and f.startswith(last))
    return match


def _postgres(where: str, count: int) -> str:
    """The GIN index (or, for a word in most messages, the id index newest first: the planner knows the
    query, a constant) finds the newest RANKED matches; ts_rank ranks them (higher is better)."""
    query = "(" + " && ".join(f"to_tsquery('simple', quote_literal(inbound_search_text(:t{i})){_last(i, count)})"
                              for i in range(count)) + ")"
    return f"""
SELECT m.id, count(*) OVER () AS matched FROM (
  SELECT m.id FROM inbound_message m
  WHERE m.{VECTOR_COLUMN} @@ {query} AND {where}
  ORDER BY m.id DESC LIMIT :ranked
) s JOIN inbound_message m ON m.id = s.id
ORDER BY ts_rank(m.{VECTOR_COLUMN}, {query}) DESC, m.received_at DESC, m.id DESC LIMIT :limit OFFSET :offset"""
