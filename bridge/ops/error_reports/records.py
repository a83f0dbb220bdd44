"""Recording the conditions error reports are about: every room calls these as it would write a log line.

Conditions, by key:
- `smtp:NAME`: every send through the SMTP account has failed, and failures are still seen 15 minutes
  after the first (one old failure followed by silence is not "failing for 15 minutes");
- `imap:NAME`: the poller of the IMAP server has not connected for 10 minutes;
- `oauth:smtp:NAME` / `oauth:imap:NAME`: a grant needs a new sign-in (at once);
- `database` and `disk`: the database or the disk failed (at once);
- `loop:ALIAS_ID`: the alias's scheduled loop probe did not come back (at once), naming the broken leg
  (bridge.ops.loop_probes); its next good probe clears it, and it is forgotten with the alias or the probe.
The sending worker, the IMAP poller and the token code call `problem` and `recovered` (through the named
helpers); recording never raises, so it never breaks the work it watches. Database and disk failures cannot
be stored in the database that failed: they are kept in this process's memory (lost on restart), with the
settings and account the last good run read, so report_mail can still send them.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import threading
from dataclasses import dataclass, field, replace

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import select

from bridge import portal
from bridge.ops.error_reports.rules import Condition
from models import AlertState, SmtpAccount, utcnow
from models.db import session_scope

MEMORY_KEYS = frozenset({"database", "disk"})

log = logging.getLogger(__name__)


def condition_of(row: AlertState) -> Condition:
    return Condition(row.key, row.title, row.detail, row.first_seen, row.last_seen, row.last_reported_at,
                     row.reported_problem, row.recovered_at, row.recovery_reported)


def problem(engine: Engine, key: str, title: str, detail: str, now: dt.datetime | None = None) -> None:
    """The condition holds now. Never raises: a failure to record is logged (the caller's own work goes on)."""
    now = now or utcnow()
    if key in MEMORY_KEYS:
        _memory_problem(engine, key, title, detail, now)
        return
    for attempt in range(2):
        try:
            with session_scope(engine) as session:
                row = session.exec(select(AlertState).where(AlertState.key == key)).first()
                if row is None:
                    row = AlertState(key=key, title=title, detail=detail, first_seen=now, last_seen=now)
                elif condition_of(row).closed:  # a new occurrence
                    row.first_seen, row.last_reported_at, row.reported_problem = now, None, False
                    row.recovered_at, row.recovery_reported = None, False
                else:  # still open, or back before its recovery was reported: the same occurrence
                    row.recovered_at = None
                row.title, row.detail, row.last_seen = title, detail[:4000], max(now, row.last_seen)
                session.add(row)
            return
        except IntegrityError:  # another process created the row first: update it on the second turn
            if attempt:
                log.warning("could not record condition %s", key, exc_info=True)
        except Exception:  # noqa: BLE001 - reporting must never break the work it watches
            log.warning("could not record condition %s", key, exc_info=True)
            return


def recovered(engine: Engine, key: str, now: dt.datetime | None = None) -> None:
    """The condition is over (one conditional UPDATE: cheap enough for every successful send or poll)."""
    now = now or utcnow()
    if key in MEMORY_KEYS:
        _memory_recovered(engine, key, now)
        return
    try:
        with session_scope(engine) as session:
            session.exec(update(AlertState).where(AlertState.key == key, AlertState.recovered_at.is_(None))
                         .values(recovered_at=now))
    except Exception:  # noqa: BLE001 - reporting must never break the work it watches
        log.warning("could not record the recovery of %s", key, exc_info=True)


def smtp_failed(engine: Engine, name: str, detail: str, now: dt.datetime | None = None) -> None:
    problem(engine, f"smtp:{name}", f"SMTP account {name!r} fails every send", detail, now)


def smtp_ok(engine: Engine, name: str, now: dt.datetime | None = None) -> None:
    recovered(engine, f"smtp:{name}", now)


def poller_failed(engine: Engine, name: str, detail: str, now: dt.datetime | None = None) -> None:
    problem(engine, f"imap:{name}", f"IMAP server {name!r}: the poller cannot connect", detail, now)


def poller_ok(engine: Engine, name: str, now: dt.datetime | None = None) -> None:
    recovered(engine, f"imap:{name}", now)


def needs_sign_in(engine: Engine, kind: str, name: str, detail: str, now: dt.datetime | None = None) -> None:
    problem(engine, f"oauth:{kind}:{name}", f"{kind.upper()} account {name!r} must be signed in again", detail, now)


def signed_in(engine: Engine, kind: str, name: str, now: dt.datetime | None = None) -> None:
    recovered(engine, f"oauth:{kind}:{name}", now)


LOOP_PREFIX = "loop:"


def loop_key(alias_id: int) -> str:
    return f"{LOOP_PREFIX}{alias_id}"


def loop_failed(engine: Engine, alias_id: int, description: str, broken: str, detail: str,
                now: dt.datetime | None = None) -> None:
    problem(engine, loop_key(alias_id), f"Loop probe of alias {description!r}: {broken}", detail, now)


def loop_ok(engine: Engine, alias_id: int, now: dt.datetime | None = None) -> None:
    recovered(engine, loop_key(alias_id), now)


def forget(engine: Engine, keys: list[str]) -> None:
    """What the conditions were about is gone (an alias removed, the loop probe turned off): their rows go, with
    no recovery mail, as nothing recovered. Never raises."""
    if not keys:
        return
    try:
        with session_scope(engine) as session:
            session.exec(delete(AlertState).where(AlertState.key.in_(keys)))
    except Exception:  # noqa: BLE001 - reporting must never break the work it watches
        log.warning("could not forget the conditions %s", ", ".join(keys), exc_info=True)


def is_storage_failure(exc: BaseException) -> bool:
    """A database error (unreachable, locked, full) or a full disk: the `database` / `disk` conditions."""
    return isinstance(exc, OperationalError) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC)


def storage_failed(engine: Engine, exc: BaseException, now: dt.datetime | None = None) -> None:
    """Record a database or disk failure in memory (report_mail.storage_failed also mails it at once).

    The statement and its parameters are left out of the mail: they may hold message content."""
    cause = getattr(exc, "orig", None) or exc
    words = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
    full = isinstance(exc, OSError) or "full" in words.lower()
    key = "disk" if full else "database"
    title = "The disk is full" if full else "The database failed"
    hint = ("Free disk space where the database and its journal live; the worker tries again every interval "
            "and nothing queued is lost." if full else
            "Check that the database server runs and answers (REPLYBRIDGE_DATABASE_URL) and that its disk has "
            "space; the worker tries again every interval and nothing queued is lost.")
    problem(engine, key, title, f"{type(cause).__name__}: {words}\nHint: {hint}", now)


def storage_ok(engine: Engine, now: dt.datetime | None = None) -> None:
    """A run that used the database went through: database and disk conditions are over."""
    for key in MEMORY_KEYS:
        _memory_recovered(engine, key, now or utcnow())


@dataclass
class _Memory:
    """Per engine: the database/disk conditions and what the last good run read (settings, account)."""

    conditions: dict[str, Condition] = field(default_factory=dict)
    settings: portal.PortalSettings | None = None
    account: SmtpAccount | None = None
    retry_at: dt.datetime | None = None


MEMORY_LOCK = threading.Lock()


_MEMORY: dict[str, _Memory] = {}


def memory_of(engine: Engine) -> _Memory:
    url = engine.url.render_as_string(hide_password=True)
    with MEMORY_LOCK:
        return _MEMORY.setdefault(url, _Memory())


def _memory_problem(engine: Engine, key: str, title: str, detail: str, now: dt.datetime) -> None:
    mem = memory_of(engine)
    with MEMORY_LOCK:
        old = mem.conditions.get(key)
        if old is None or old.closed:
            mem.conditions[key] = Condition(key, title, detail, now, now)
        else:
            mem.conditions[key] = replace(old, title=title, detail=detail, last_seen=max(now, old.last_seen),
                                          recovered_at=None)


def _memory_recovered(engine: Engine, key: str, now: dt.datetime) -> None:
    mem = memory_of(engine)
    with MEMORY_LOCK:
        old = mem.conditions.get(key)
        if old is not None and old.recovered_at is None:
            mem.conditions[key] = replace(old, recovered_at=now)
