"""Retention: delete what is past the time the keep_*_days settings allow (retention_kinds.py says what),
leaving only counts behind (retention_tally.py). Run daily by the scheduler and by `replybridge retention
run`.

Rows go in batches, each its own short transaction (the write lock on SQLite is held for one batch, so a
running `serve` waits milliseconds, not minutes). A batch locks the rows it picks (`FOR UPDATE SKIP LOCKED`
on PostgreSQL; on SQLite it takes the database's write lock before it reads), deletes them with `RETURNING`
and tallies exactly the rows it got back, in the same transaction: two runs at once never count a row
twice, and a run stopped half-way leaves a tally that matches what is gone. A dry run counts and changes
nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, func, not_, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge import audit, portal
from bridge.privacy import retention_tally
from bridge.privacy.retention_kinds import KINDS, Kind
from models import aware, utcnow
from models.db import begin_write, session_scope

BATCH = 500
Progress = Callable[[str, int], None]  # (kind, removed so far)


@dataclass
class KindResult:
    kind: str
    setting: str
    days: int
    cutoff: dt.datetime
    removed: int = 0  # or, in a dry run, would be removed
    by_outcome: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "setting": self.setting, "days": self.days, "cutoff": self.cutoff.isoformat(),
                "removed": self.removed, "by_outcome": dict(sorted(self.by_outcome.items()))}


@dataclass
class Report:
    dry_run: bool
    results: list[KindResult]

    @property
    def configured(self) -> bool:
        """False when no keep_*_days setting is set: retention keeps everything."""
        return bool(self.results)

    @property
    def removed(self) -> int:
        return sum(r.removed for r in self.results)

    def summary(self) -> str:
        """One line of counts, e.g. "inbound 12, outbound 3, audit 0" (the audit entry, the job's log)."""
        return ", ".join(f"{r.kind} {r.removed}" for r in self.results)

    def as_json(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "configured": self.configured, "removed": self.removed,
                "kinds": [r.as_json() for r in self.results]}


@dataclass(frozen=True)
class Step:
    kind: Kind
    days: int
    cutoff: dt.datetime
    earlier: tuple[tuple[Kind, dt.datetime], ...]  # the kinds before it on the same table (a dry run skips theirs)


def plan(settings: portal.PortalSettings, now: dt.datetime) -> list[Step]:
    """The kinds whose setting is set, each with its cut-off: records made before it are past their time."""
    steps: list[Step] = []
    for kind in KINDS:
        days = getattr(settings, kind.setting)
        if days is None:
            continue
        earlier = tuple((s.kind, s.cutoff) for s in steps if s.kind.table is kind.table)
        steps.append(Step(kind, days, now - dt.timedelta(days=days), earlier))
    return steps


def run(engine: Engine, *, dry_run: bool = False, now: dt.datetime | None = None, batch: int = BATCH,
        progress: Progress | None = None, actor: str | None = None) -> Report:
    """Apply the retention settings once. A real run records one audit entry with the counts (by `actor`,
    else "system"); a run with no setting set does nothing at all."""
    now = now or utcnow()
    with Session(engine) as session:
        steps = plan(portal.load(session), now)
    results = [count(engine, step, now) if dry_run else sweep(engine, step, now, batch, progress) for step in steps]
    report = Report(dry_run, results)
    if steps and not dry_run:
        with session_scope(engine) as session:
            if actor:
                audit.act_as(session, actor)
            audit.record(session, "retention", None, report.summary())
    return report


def count(engine: Engine, step: Step, now: dt.datetime) -> KindResult:
    """What a run would remove of one kind, per outcome; reads only."""
    kind = step.kind
    due = step.kind.due(step.cutoff, now)
    if step.earlier:  # removed by an earlier kind first: not counted twice
        due = and_(due, not_(or_(*(k.due(c, now) for k, c in step.earlier))))
    with Session(engine) as session:
        rows = session.exec(select(kind.outcome, func.count()).where(due).group_by(kind.outcome)).all()
    found = Counter({_outcome(outcome): n for outcome, n in rows})
    return KindResult(kind.name, kind.setting, step.days, step.cutoff, sum(found.values()), found)


def sweep(engine: Engine, step: Step, now: dt.datetime, batch: int = BATCH,
          progress: Progress | None = None) -> KindResult:
    """Remove one kind's records past the cut-off, a batch per transaction, until none is left."""
    result = KindResult(step.kind.name, step.kind.setting, step.days, step.cutoff)
    while True:
        gone = remove_batch(engine, step.kind, step.cutoff, now, batch)
        if not gone:
            return result
        for (_day, outcome), n in gone.items():
            result.by_outcome[outcome] += n
        result.removed += sum(gone.values())
        if progress is not None:
            progress(step.kind.name, result.removed)


def remove_batch(engine: Engine, kind: Kind, cutoff: dt.datetime, now: dt.datetime,
                 size: int = BATCH) -> Counter[tuple[dt.date, str]]:
    """One transaction: lock up to `size` records past the cut-off, clear what refers to them, delete them
    and add exactly the deleted ones to the tally. Returns (day made, outcome) -> number removed."""
    table = kind.table
    with session_scope(engine) as session:
        begin_write(session.connection())  # SQLite: the write lock first, so what is read stays true
        ids = list(session.exec(select(table.id).where(kind.due(cutoff, now)).order_by(table.id).limit(size)
                                .with_for_update(skip_locked=True)))
        if not ids:
            return Counter()
        kind.before_delete(session, ids)
        gone = session.exec(delete(table).where(table.id.in_(ids))  # type: ignore[call-overload]
                            .returning(kind.made, kind.outcome).execution_options(synchronize_session=False)).all()
        counts = Counter((aware(made).astimezone(dt.UTC).date(), _outcome(outcome)) for made, outcome in gone)
        retention_tally.add(session, kind.name, counts)
        return counts


def _outcome(value: str | None) -> str:
    return value or "none"
