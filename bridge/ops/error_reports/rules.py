"""When an error condition is worth a mail: pure rules, no I/O (tested without a clock or a database).

A condition is reported once it has lasted its threshold (SMTP 15 min, poller 10 min, others at once),
again at most every hour while it stays open, and its recovery once. When anything is due, every open
condition reported before rides along, so one mail gives the whole picture."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

PROBLEM, STILL, RECOVERED = "problem", "still", "recovered"


THRESHOLDS = {"smtp": dt.timedelta(minutes=15), "imap": dt.timedelta(minutes=10)}


REPEAT = dt.timedelta(hours=1)


def threshold(key: str) -> dt.timedelta:
    """How long a condition must last before it is reported: SMTP 15 min, poller 10 min, others at once."""
    return THRESHOLDS.get(key.split(":", 1)[0], dt.timedelta(0))


def decide(key: str, first_seen: dt.datetime, last_seen: dt.datetime, last_reported: dt.datetime | None,
           now: dt.datetime, *, recovered: bool, reported_problem: bool, recovery_reported: bool = False) -> str | None:
    """What to mail about one condition now: "problem", "still", "recovered", or None (nothing)."""
    if recovered:
        return RECOVERED if reported_problem and not recovery_reported else None
    if not reported_problem:
        return PROBLEM if last_seen - first_seen >= threshold(key) else None
    return STILL if last_reported is None or now - last_reported >= REPEAT else None


@dataclass(frozen=True)
class Condition:
    """One condition as read from the table (or from memory)."""

    key: str
    title: str
    detail: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    last_reported_at: dt.datetime | None = None
    reported_problem: bool = False
    recovered_at: dt.datetime | None = None
    recovery_reported: bool = False

    @property
    def closed(self) -> bool:
        """Over: recovered, and either never reported or its recovery reported too."""
        return self.recovered_at is not None and (self.recovery_reported or not self.reported_problem)

    def decision(self, now: dt.datetime) -> str | None:
        return decide(self.key, self.first_seen, self.last_seen, self.last_reported_at, now,
                      recovered=self.recovered_at is not None, reported_problem=self.reported_problem,
                      recovery_reported=self.recovery_reported)

    def after_report(self, kind: str, now: dt.datetime) -> Condition:
        if kind == RECOVERED:
            return replace(self, recovery_reported=True, last_reported_at=now)
        return replace(self, reported_problem=True, last_reported_at=now)


def digest(conditions: list[Condition], now: dt.datetime) -> list[tuple[str, Condition]]:
    """The items of the one mail to send now (empty: none). When anything is due, every open condition
    that was reported before rides along as "still"."""
    due = [(kind, c) for c in conditions if not c.closed and (kind := c.decision(now)) is not None]
    if not due:
        return []
    keys = {c.key for _kind, c in due}
    riding = [(STILL, c) for c in conditions
              if c.key not in keys and c.reported_problem and c.recovered_at is None]
    order = {PROBLEM: 0, STILL: 1, RECOVERED: 2}
    return sorted(due + riding, key=lambda item: (order[item[0]], item[1].first_seen, item[1].key))
