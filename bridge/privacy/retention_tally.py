"""The record retention leaves behind: how many records of each kind and outcome, made on each day, were
removed. No content, only counts, so the Mail Log's and the inbox's history still adds up after the
messages are gone.

Counts are added in the transaction that deletes the rows they count, with one `INSERT ... ON CONFLICT DO
UPDATE SET count = count + excluded.count` (the same statement on SQLite and PostgreSQL): two runs at once
each add only what they themselves deleted.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from models import RetentionTally

KINDS = ("inbound", "dismissed", "outbound", "webhook", "audit")


def add(session: Session, kind: str, counts: Counter[tuple[dt.date, str]]) -> None:
    """Add `counts` ((day, outcome) -> number removed) to the tally, in the caller's transaction."""
    if not counts:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = [{"day": day, "kind": kind, "outcome": outcome[:64], "count": n} for (day, outcome), n in counts.items()]
    statement = insert(RetentionTally).values(rows)
    session.exec(statement.on_conflict_do_update(  # type: ignore[call-overload]
        index_elements=["day", "kind", "outcome"],
        set_={"count": RetentionTally.count + statement.excluded["count"]}))


@dataclass(frozen=True)
class TallyRow:
    day: dt.date
    kind: str
    outcome: str
    count: int

    def as_json(self) -> dict[str, object]:
        return {"day": self.day.isoformat(), "kind": self.kind, "outcome": self.outcome, "count": self.count}


def history(session: Session, kind: str | None = None) -> list[TallyRow]:
    """Every tally row, newest day first (then kind, outcome)."""
    query = select(RetentionTally).order_by(RetentionTally.day.desc(), RetentionTally.kind, RetentionTally.outcome)
    if kind:
        query = query.where(RetentionTally.kind == kind)
    return [TallyRow(r.day, r.kind, r.outcome, r.count) for r in session.exec(query)]


@dataclass(frozen=True)
class Totals:
    """One kind's removed records added up per outcome, and the days they were made on."""

    by_outcome: dict[str, int]
    first_day: dt.date | None
    last_day: dt.date | None

    @property
    def total(self) -> int:
        return sum(self.by_outcome.values())


def totals(session: Session, kind: str) -> Totals:
    """What retention removed of one kind: per outcome, with the first and last day (the Mail Log page)."""
    rows = session.exec(select(RetentionTally.outcome, func.sum(RetentionTally.count), func.min(RetentionTally.day),
                               func.max(RetentionTally.day))
                        .where(RetentionTally.kind == kind).group_by(RetentionTally.outcome)
                        .order_by(RetentionTally.outcome)).all()
    firsts = [r[2] for r in rows if r[2] is not None]
    lasts = [r[3] for r in rows if r[3] is not None]
    return Totals({outcome: int(n) for outcome, n, _first, _last in rows},
                  min(firsts) if firsts else None, max(lasts) if lasts else None)
