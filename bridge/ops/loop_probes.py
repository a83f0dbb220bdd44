"""The loop probe on a schedule: every `loop_probe_hours`, `test loop` (bridge.checks.loop_probe) for each alias
of an active employee, and an error report naming the broken leg when a probe does not come back.

Silent loss of replies (an MX or forwarding rule changed, a poller stuck) is the failure users fear most, and
nothing else would notice it. The job runs every minute in the scheduler of `serve`'s services process and of
`replybridge worker`, on the scheduler's executor: a thread of its own, so the other jobs go on while a probe
waits, and one round at a time.

- When each alias's last probe started is kept in `loop_probe`, so a restart neither probes at once nor
  forgets; an alias without a row (the setting just turned on, a new alias) is due at once.
- A probe is claimed by one conditional UPDATE that checks it is due and free and sets its start and a lease
  covering the whole wait: two processes (two `serve`s on one PostgreSQL) never probe one alias at once, and
  a holder that died frees it when the lease runs out.
- The probes of a round run side by side (up to MAX_PARALLEL) and never poll the catch-all folders
  themselves: a poller stuck or not running is one of the things they are there to see.
- A good probe clears the alias's condition and removes its own stored copy (the next probe of the alias
  removes the copy of one that came back late): probes do not pile up among a recruiter's messages.
- The conditions of aliases no longer probed (removed, their employee inactive, the setting off) are
  forgotten, without a recovery mail.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bridge import portal
from bridge.checks import loop_probe
from bridge.checks.loop_probe import LEG_NO_ACCOUNT, LEG_WORDS, LoopReport, Waiting
from bridge.errors import BridgeError
from bridge.inbound.imap.folder_state import default_owner
from bridge.ops.error_reports import records
from models import AlertState, Alias, Employee, InboundMessage, LoopProbe, utcnow
from models.db import session_scope

log = logging.getLogger("replybridge.loop_probe")

CHECK_EVERY = dt.timedelta(minutes=1)  # how often the job looks for a due probe
WAIT = dt.timedelta(minutes=10)  # how long a scheduled probe waits to come back (greylisting, a slow forward)
LEASE_MARGIN = dt.timedelta(minutes=5)  # the lease covers every probe's wait in the round, the sends and this
LOOK_EVERY_S = 0.5  # how often a waiting probe looks for its stored copy
MAX_PARALLEL = 8


@dataclass(frozen=True)
class Outcome:
    """One alias's probe in a round; `report` is None when the probe itself failed (logged, nothing recorded)."""

    alias_id: int
    description: str
    report: LoopReport | None


_ROUND = threading.Lock()  # one round at a time in this process


def safe_round(engine: Engine, stopping: Callable[[], bool], wait: float = WAIT.total_seconds()) -> None:
    """The scheduler's job: one round (none while the one before still waits), each probe's verdict in a log
    line; an error is logged, and the next check tries again."""
    if not _ROUND.acquire(blocking=False):
        return
    try:
        outcomes = run_round(engine, wait, stopping=stopping)
    except Exception:  # noqa: BLE001 - the service must outlive one failed round
        log.exception("loop probe round failed; trying again at the next check")
        return
    finally:
        _ROUND.release()
    for outcome in outcomes:
        report = outcome.report
        if report is None or report.stopped:
            continue
        if report.ok:
            log.info("loop probe of alias %r came back", outcome.description)
        else:
            log.warning("loop probe of alias %r: %s: %s", outcome.description, LEG_WORDS[report.broken_leg],
                        report.diagnosis)


def run_round(engine: Engine, wait: float = WAIT.total_seconds(), *, owner: str | None = None,
              stopping: Callable[[], bool] = lambda: False, now: dt.datetime | None = None) -> list[Outcome]:
    """Probe every alias that is due now (`now`: the round's time), each waiting up to `wait` seconds; returns
    what each claimed probe found. Nothing when `loop_probe_hours` is empty."""
    owner = owner or default_owner()
    now = now or utcnow()
    hours, targets = _targets(engine)
    _forget_others(engine, set(targets) if hours else set())
    if hours is None:
        return []
    turns = -(-len(targets) // MAX_PARALLEL)  # a probe may wait for the turns before its own
    lease = dt.timedelta(seconds=wait) * max(1, turns) + LEASE_MARGIN
    claimed = _claim_due(engine, targets, owner, now, dt.timedelta(hours=hours), lease)
    if not claimed:
        return []
    waiting = Waiting(timeout=wait, poll=False, look_every=LOOK_EVERY_S, stopping=stopping)
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(claimed)), thread_name_prefix="rb-loop-probe") as pool:
        return list(pool.map(lambda item: _probe_one(engine, item[0], item[1], owner, waiting), claimed))


def _targets(engine: Engine) -> tuple[int | None, dict[int, str]]:
    """The setting, and the aliases of active employees by id (an inactive one's number routes to Unassigned)."""
    with session_scope(engine) as session:
        hours = portal.load(session).loop_probe_hours
        rows = session.exec(select(Alias.id, Alias.description).join(Employee, Employee.id == Alias.employee_id)
                            .where(Employee.active).order_by(Alias.id)).all()
    return hours, dict(rows)


def _forget_others(engine: Engine, probed: set[int]) -> None:
    with session_scope(engine) as session:
        keys = session.exec(select(AlertState.key).where(AlertState.key.startswith(records.LOOP_PREFIX))).all()
    wanted = {records.loop_key(alias_id) for alias_id in probed}
    records.forget(engine, [key for key in keys if key not in wanted])


def _claim_due(engine: Engine, targets: dict[int, str], owner: str, now: dt.datetime, every: dt.timedelta,
               lease: dt.timedelta) -> list[tuple[int, str]]:
    """The aliases whose probe this process takes now: due (never probed, or started `every` ago) and free (no
    lease, or a lapsed one). Read first, so a check with nothing due writes nothing; then one conditional UPDATE
    each, checked by its row count."""
    _add_rows(engine, list(targets))
    due = or_(LoopProbe.started_at.is_(None), LoopProbe.started_at <= now - every)
    free = or_(LoopProbe.lease_until.is_(None), LoopProbe.lease_until < now)
    with session_scope(engine) as session:
        candidates = set(session.exec(select(LoopProbe.alias_id).where(LoopProbe.alias_id.in_(list(targets)), due,
                                                                       free)).all())
    claimed = []
    for alias_id, description in targets.items():
        if alias_id not in candidates:
            continue
        with session_scope(engine) as session:
            taken = session.exec(update(LoopProbe).where(LoopProbe.alias_id == alias_id, due, free)
                                 .values(started_at=now, lease_owner=owner, lease_until=now + lease)).rowcount
        if taken == 1:
            claimed.append((alias_id, description))
    return claimed


def _add_rows(engine: Engine, alias_ids: list[int]) -> None:
    with session_scope(engine) as session:
        known = set(session.exec(select(LoopProbe.alias_id).where(LoopProbe.alias_id.in_(alias_ids))).all())
    for alias_id in alias_ids:
        if alias_id in known:
            continue
        try:
            with session_scope(engine) as session:
                session.add(LoopProbe(alias_id=alias_id))
        except IntegrityError:  # another process added it first, or the alias was just removed
            continue


def _probe_one(engine: Engine, alias_id: int, description: str, owner: str, waiting: Waiting) -> Outcome:
    """Probe one claimed alias and record the verdict: its row, its condition, its stored copy."""
    try:
        _remove_copy(engine, alias_id)  # the previous probe's, should it have come back late
        report = _probe(engine, description, waiting)
        if report.stopped:
            _release(engine, alias_id, owner, report.message_id)
            return Outcome(alias_id, description, report)
        _finish(engine, alias_id, owner, report)
    except Exception:  # noqa: BLE001 - one alias's failure must not end the others' probes
        log.exception("the loop probe of alias %r failed; it is tried again when next due", description)
        _release(engine, alias_id, owner, None)
        return Outcome(alias_id, description, None)
    if report.ok:
        records.loop_ok(engine, alias_id)
        _remove_copy(engine, alias_id)
    else:
        records.loop_failed(engine, alias_id, description, LEG_WORDS[report.broken_leg], detail(description, report))
    return Outcome(alias_id, description, report)


def _probe(engine: Engine, description: str, waiting: Waiting) -> LoopReport:
    try:
        return loop_probe.run(engine, description, waiting=waiting)
    except BridgeError as err:  # the probe cannot even be made, e.g. no reply address template
        return LoopReport().fail(LEG_NO_ACCOUNT, f"the probe could not be composed: {err}")


def detail(description: str, report: LoopReport) -> str:
    """The error report's text about a failed probe: the leg, the diagnosis with what to check, what was sent."""
    return "\n".join([f"Broken leg: {LEG_WORDS[report.broken_leg]}", f"Diagnosis: {report.diagnosis}",
                      *report.steps, f"Try it by hand: replybridge test loop {description!r}"])


def _finish(engine: Engine, alias_id: int, owner: str, report: LoopReport) -> None:
    with session_scope(engine) as session:
        session.exec(update(LoopProbe).where(LoopProbe.alias_id == alias_id, LoopProbe.lease_owner == owner).values(
            finished_at=utcnow(), ok=report.ok, broken_leg=report.broken_leg,
            detail=None if report.ok else (report.diagnosis or "")[:4000], message_id=report.message_id,
            lease_owner=None, lease_until=None))


def _release(engine: Engine, alias_id: int, owner: str, message_id: str | None) -> None:
    """Give the alias up without a verdict (the process is stopping, or the probe failed); its start stays, so
    the next probe comes when due. Never raises: else the lease runs out by itself."""
    values: dict[str, object] = {"lease_owner": None, "lease_until": None}
    if message_id is not None:
        values["message_id"] = message_id
    try:
        with session_scope(engine) as session:
            session.exec(update(LoopProbe).where(LoopProbe.alias_id == alias_id, LoopProbe.lease_owner == owner)
                         .values(**values))
    except Exception:  # noqa: BLE001 - the lease lapses by itself
        log.warning("could not release the loop probe of alias %s", alias_id, exc_info=True)


def _remove_copy(engine: Engine, alias_id: int) -> None:
    """Delete the stored copy of the alias's last probe once routed (from its own address, under its own
    Message-ID, which no one else can know beforehand)."""
    with session_scope(engine) as session:
        probe = session.get(LoopProbe, alias_id)
        alias = session.get(Alias, alias_id)
        if probe is None or probe.message_id is None or alias is None:
            return
        session.exec(delete(InboundMessage).where(
            InboundMessage.message_id == probe.message_id, InboundMessage.routed_at.is_not(None),
            func.lower(InboundMessage.from_addr) == alias.from_address.lower()))
