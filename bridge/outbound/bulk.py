"""Bulk sending from a CSV file (a row per message: `email` or `to`, `name`, and any `{column}` placeholder),
shared by `send --csv` and the bulk send page: every row is checked and queued in one transaction, so
one bad row queues nothing; the alias delay says how long the batch takes at least."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import replace

from sqlmodel import Session

from bridge.accounts import aliases, employees
from bridge.errors import InputError
from bridge.outbound import queue
from models import OutboundMessage


def read_rows(text: str, source: str) -> list[dict[str, str]]:
    """The CSV's rows, column names lower-case; InputError naming `source` when it cannot be used."""
    try:
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))]
    except csv.Error as err:
        raise InputError(f"cannot read the CSV file {source}: {err}") from None
    if not rows:
        raise InputError(f"the CSV file {source} has no rows")
    if "email" not in rows[0] and "to" not in rows[0]:
        raise InputError(f"the CSV file {source} needs an `email` (or `to`) column; it has: {', '.join(rows[0])}")
    return rows


def request_for(base: queue.Request, row: dict[str, str]) -> queue.Request:
    return replace(base, to=row.get("email") or row.get("to") or "", to_name=row.get("name") or None, values=row)


def queue_rows(session: Session, base: queue.Request, rows: Iterable[dict[str, str]], source: str,
               each: Callable[[OutboundMessage], None] = lambda _m: None) -> list[OutboundMessage]:
    """Queue a message per row in the caller's transaction; InputError naming the line: then none is kept."""
    queued = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            message = queue.queue(session, request_for(base, row))
        except InputError as err:
            raise InputError(f"{source} line {line}: {err}; nothing was queued") from None
        each(message)
        queued.append(message)
    return queued


def delay_ms(session: Session, base: queue.Request) -> int:
    """The alias delay the batch goes out with."""
    alias = aliases.alias_for(session, employees.get_employee(session, base.employee_number), base.alias)
    return alias.delay_ms if alias else 0


def duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def estimate(delay: int, count: int) -> str:
    """How long the alias delay makes `count` messages take at least, in words ("" without a delay)."""
    return f"with a delay of {delay} ms between emails, sending takes at least {duration(delay * (count - 1) / 1000)}" \
        if delay and count > 1 else ""
