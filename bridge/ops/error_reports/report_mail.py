"""Error reports to the admin by mail: the critical conditions, their state, when to report, the mail.

Conditions, by key:
- `smtp:NAME`: every send through the SMTP account has failed, and failures are still seen 15 minutes
  after the first (one old failure followed by silence is not "failing for 15 minutes");
- `imap:NAME`: the poller of the IMAP server has not connected for 10 minutes;
- `oauth:smtp:NAME` / `oauth:imap:NAME`: a grant needs a new sign-in (at once);
- `database` and `disk`: the database or the disk failed (at once).
Hooks in the worker, the IMAP poller and the token code call `problem` and `recovered`; `report_due`,
run by every worker run, sends ONE mail with every condition that is due: new problems, problems still
open an hour after their last report (a digest, not a flood), and recoveries (once each). When a mail goes
out anyway, every other open reported condition is listed in it too, so one mail gives the whole picture.

The mail goes straight through the database-wide account, not through the outbound queue it may be
reporting about. Conditions are claimed before sending (a conditional UPDATE, so two workers do not both
mail them) and the claim is undone when sending fails; such a failure is logged, never reported (no loop),
and sending is tried again after RETRY_AFTER.

Database and disk failures cannot be stored in the database that failed: they are kept in this process's
memory, and mailed with the settings and account remembered from this process's last run that could read
them. That memory is per process and lost on restart: a process that never read the settings cannot
report them, and after a restart an unreported failure is forgotten.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import threading
from dataclasses import dataclass, field, replace
from email.utils import formataddr

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import select

from bridge import portal
from bridge.accounts import smtp_accounts
from bridge.checks.connection_check import Report
from bridge.errors import BridgeError, ConfigError, InputError
from bridge.net.connections import StageError, close_quietly, endpoint_of, open_smtp
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.outbound.compose import Draft, check_address, render
from bridge.outbound.smtp_transaction import transmit
from models import AlertState, SmtpAccount, utcnow
from models.db import session_scope
from routing.message_ids import make_message_id

log = logging.getLogger(__name__)

PROBLEM, STILL, RECOVERED = "problem", "still", "recovered"
THRESHOLDS = {"smtp": dt.timedelta(minutes=15), "imap": dt.timedelta(minutes=10)}
REPEAT = dt.timedelta(hours=1)
RETRY_AFTER = dt.timedelta(minutes=5)
MEMORY_KEYS = frozenset({"database", "disk"})


# --- the decision: pure, no I/O --------------------------------------------------------------------------

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


# --- recording conditions ----------------------------------------------------------------------------------

def _of(row: AlertState) -> Condition:
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
                elif _of(row).closed:  # a new occurrence
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


def is_storage_failure(exc: BaseException) -> bool:
    """A database error (unreachable, locked, full) or a full disk: the `database` / `disk` conditions."""
    return isinstance(exc, OperationalError) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC)


def storage_failed(engine: Engine, exc: BaseException, now: dt.datetime | None = None) -> None:
    """Record a database or disk failure in memory and mail it at once if this process can.

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
    try:
        report_due(engine, now, memory_only=True)
    except Exception:  # noqa: BLE001 - logged, never reported: no loop
        log.warning("could not mail the %s report", key, exc_info=True)


def storage_ok(engine: Engine, now: dt.datetime | None = None) -> None:
    """A run that used the database went through: database and disk conditions are over."""
    for key in MEMORY_KEYS:
        _memory_recovered(engine, key, now or utcnow())


# --- memory: conditions the database cannot hold ------------------------------------------------------------

@dataclass
class _Memory:
    """Per engine: the database/disk conditions and what the last good run read (settings, account)."""

    conditions: dict[str, Condition] = field(default_factory=dict)
    settings: portal.PortalSettings | None = None
    account: SmtpAccount | None = None
    retry_at: dt.datetime | None = None


_LOCK = threading.Lock()
_MEMORY: dict[str, _Memory] = {}


def _memory(engine: Engine) -> _Memory:
    url = engine.url.render_as_string(hide_password=True)
    with _LOCK:
        return _MEMORY.setdefault(url, _Memory())


def _memory_problem(engine: Engine, key: str, title: str, detail: str, now: dt.datetime) -> None:
    mem = _memory(engine)
    with _LOCK:
        old = mem.conditions.get(key)
        if old is None or old.closed:
            mem.conditions[key] = Condition(key, title, detail, now, now)
        else:
            mem.conditions[key] = replace(old, title=title, detail=detail, last_seen=max(now, old.last_seen),
                                          recovered_at=None)


def _memory_recovered(engine: Engine, key: str, now: dt.datetime) -> None:
    mem = _memory(engine)
    with _LOCK:
        old = mem.conditions.get(key)
        if old is not None and old.recovered_at is None:
            mem.conditions[key] = replace(old, recovered_at=now)


# --- the report ---------------------------------------------------------------------------------------------

def _claim(engine: Engine, items: list[tuple[str, Condition]], now: dt.datetime) -> list[tuple[str, Condition]]:
    """Mark the table's items reported, each only if no other worker did meanwhile; returns those taken."""
    taken = []
    with session_scope(engine) as session:
        for kind, c in items:
            if c.key in MEMORY_KEYS:
                taken.append((kind, c))
                continue
            done = c.after_report(kind, now)
            rows = session.exec(update(AlertState).where(
                AlertState.key == c.key, AlertState.last_reported_at.is_not_distinct_from(c.last_reported_at),
                AlertState.reported_problem == c.reported_problem,
                AlertState.recovery_reported == c.recovery_reported,
            ).values(last_reported_at=now, reported_problem=done.reported_problem,
                     recovery_reported=done.recovery_reported)).rowcount
            if rows == 1:
                taken.append((kind, c))
    return taken


def _unclaim(engine: Engine, items: list[tuple[str, Condition]], now: dt.datetime) -> None:
    """Sending failed: the items are due again (unless something newer was recorded meanwhile)."""
    try:
        with session_scope(engine) as session:
            for _kind, c in items:
                if c.key not in MEMORY_KEYS:
                    session.exec(update(AlertState).where(AlertState.key == c.key, AlertState.last_reported_at == now)
                                 .values(last_reported_at=c.last_reported_at, reported_problem=c.reported_problem,
                                         recovery_reported=c.recovery_reported))
    except Exception:  # noqa: BLE001 - logged; at worst one report is skipped
        log.warning("could not undo the claim of an unsent report", exc_info=True)


def report_due(engine: Engine, now: dt.datetime | None = None, *, memory_only: bool = False) -> int:
    """Send one mail with every condition due now; returns how many conditions it listed (0: no mail).

    `memory_only`: the database is failing, so use what the last good run read, and memory's conditions."""
    now = now or utcnow()
    mem = _memory(engine)
    if mem.retry_at is not None and now < mem.retry_at:
        return 0
    stored: list[Condition] = []
    if not memory_only:
        with session_scope(engine) as session:
            settings = portal.load(session)
            account = smtp_accounts.default_smtp(session)
            if account is not None:
                session.expunge(account)
            stored = [_of(row) for row in session.exec(select(AlertState))]
        with _LOCK:
            mem.settings, mem.account = settings, account
    with _LOCK:
        settings, account = mem.settings, mem.account
        remembered = list(mem.conditions.values())
    if settings is None or not settings.report_errors or not settings.report_to:
        return 0
    items = digest([c for c in stored if not c.closed] + remembered, now)
    if not items:
        return 0
    if not memory_only:
        items = _claim(engine, items, now)
        if not items:
            return 0
    try:
        if account is None:
            raise ConfigError("no database-wide SMTP account (smtp add NAME ... --default)")
        _send(settings, account, items)
    except (StageError, BridgeError) as err:
        log.warning("could not send the error report (%s); trying again in %s min: %s",
                    ", ".join(c.key for _k, c in items), int(RETRY_AFTER.total_seconds() // 60), _why(err, account))
        with _LOCK:
            mem.retry_at = now + RETRY_AFTER
        if not memory_only:
            _unclaim(engine, items, now)
        return 0
    with _LOCK:
        mem.retry_at = None
        for kind, c in items:
            if c.key in mem.conditions:
                mem.conditions[c.key] = mem.conditions[c.key].after_report(kind, now)
    log.info("error report sent to %s: %s", settings.report_to, ", ".join(f"{c.key} {k}" for k, c in items))
    return len(items)


def _why(err: Exception, account: SmtpAccount | None) -> str:
    if isinstance(err, StageError) and account is not None:
        failure = failure_from_exception(err.cause, err.stage)
        return f"{failure.reply()} (at {failure.stage}): {diagnose(failure, endpoint_of(account)).hint}"
    return str(err)


def _from_address(settings: portal.PortalSettings, account: SmtpAccount) -> str:
    if settings.report_from:
        return settings.report_from
    try:
        return check_address(account.username or "", "the database-wide account's username")
    except InputError:
        raise ConfigError(f"the database-wide account {account.name!r} has no username that is an address: set "
                          "one with `replybridge settings set report_from ADDRESS`") from None


def _when(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(delta: dt.timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def subject_condition(items: list[tuple[str, Condition]]) -> str:
    """What {condition} in the subject becomes: the one condition, or how many and which."""
    def word(kind: str, c: Condition) -> str:
        return f"recovered: {c.title}" if kind == RECOVERED else c.title
    if len(items) == 1:
        return word(*items[0])
    text = f"{len(items)} conditions: " + "; ".join(word(k, c) for k, c in items)
    return text if len(text) <= 160 else text[:159] + "…"


def body(items: list[tuple[str, Condition]], now: dt.datetime) -> str:
    """The report's text: each condition with when, the diagnosis and the hint."""
    heads = {PROBLEM: "PROBLEM", STILL: "STILL OPEN", RECOVERED: "RECOVERED"}
    lines = [f"replybridge error report, {_when(now)}", ""]
    for kind, c in items:
        lines.append(f"{heads[kind]}: {c.title}")
        if kind == RECOVERED:
            lines.append(f"  from {_when(c.first_seen)} until {_when(c.recovered_at or now)}")
        else:
            lines.append(f"  since {_when(c.first_seen)} ({_span(now - c.first_seen)}), last seen {_when(c.last_seen)}")
        lines += [f"  {line}" for line in c.detail.splitlines()]
        lines.append("")
    lines += ["An open condition is reported again at most once an hour, and its recovery once.",
              "Settings: replybridge settings set report_errors on|off, report_to, report_to_name, report_subject."]
    return "\n".join(lines) + "\n"


def compose(settings: portal.PortalSettings, account: SmtpAccount, items: list[tuple[str, Condition]],
            now: dt.datetime | None = None) -> tuple[str, bytes]:
    """The report mail: (envelope sender, bytes), marked Auto-Submitted: auto-generated."""
    sender = _from_address(settings, account)
    draft = Draft(from_name=settings.mailer_name, from_addr=sender, to_addr=settings.report_to,
                  to_name=settings.report_to_name or None,
                  subject=settings.report_subject.format(condition=subject_condition(items)),
                  message_id=make_message_id(b"", sender.rsplit("@", 1)[1], None), mailer=settings.mailer_name,
                  text=body(items, now or utcnow()), auto_submitted="auto-generated")
    return sender, render(draft)


def _send(settings: portal.PortalSettings, account: SmtpAccount, items: list[tuple[str, Condition]]) -> str:
    """Straight to the database-wide account's server; returns its reply. Raises StageError or BridgeError."""
    sender, raw = compose(settings, account, items)
    conn = open_smtp(account)
    try:
        accepted = transmit(conn, sender, [settings.report_to], raw)
    finally:
        close_quietly(conn)
    return f"{accepted.code} {accepted.reply}".strip()


def send_sample(engine: Engine) -> Report:
    """`replybridge test report`: a sample report now, also while reporting is off (then the report says so),
    so the route can be checked before it is needed. Fails (Status: FAILED) without a recipient or a
    database-wide account, or when the server refuses."""
    with session_scope(engine) as session:
        settings = portal.load(session)
        account = smtp_accounts.default_smtp(session)
        if account is not None:
            session.expunge(account)
    report = Report()
    if not settings.report_to:
        return replace(report, ok=False, diagnosis="no recipient for error reports",
                       hint="replybridge settings set report_to admin@example.com")
    if account is None:
        return replace(report, ok=False, diagnosis="no database-wide SMTP account",
                       hint="add one with `replybridge smtp add NAME ... --default`")
    now = utcnow()
    sample = Condition("sample", "Sample report (replybridge test report)",
                       "Nothing is wrong: this shows what an error report looks like and that it arrives.\n"
                       "Hint: a real report names the condition, its diagnosis and what to do.", now, now)
    try:
        reply = _send(settings, account, [(PROBLEM, sample)])
    except StageError as err:
        failure = failure_from_exception(err.cause, err.stage)
        return report.fail(failure, diagnose(failure, endpoint_of(account)).hint)
    except BridgeError as err:
        return replace(report, ok=False, diagnosis=str(err), hint="fix the set-up named above, then try again")
    report.steps.append(f"Sample report sent to {formataddr((settings.report_to_name, settings.report_to))} "
                        f"through the database-wide account {account.name!r}: {reply}")
    if not settings.report_errors:
        report.steps.append("Note: reporting is off, so real conditions are not mailed yet: "
                            "replybridge settings set report_errors on")
    return report
