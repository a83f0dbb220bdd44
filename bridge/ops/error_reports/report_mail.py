"""The error report mail: ONE mail with every condition due now (bridge.ops.error_reports.records keeps
them, bridge.ops.error_reports.rules says which are due): new problems, problems still open an hour after
their last report (a digest, not a flood), and recoveries (once each). `report_due` runs at the end of
every worker run; `storage_failed` mails a database or disk failure at once where this process can.

The mail goes straight through the database-wide account, not through the outbound queue it may be
reporting about. Conditions are claimed before sending (a conditional UPDATE, so two workers do not both
mail them) and the claim is undone when sending fails; such a failure is logged, never reported (no loop),
and sending is tried again after RETRY_AFTER. Memory's conditions (database, disk) are mailed with the
settings and account remembered from this process's last run that could read them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from email.utils import formataddr

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge import portal
from bridge.accounts import smtp_accounts
from bridge.accounts.oauth.tokens import bearer_for
from bridge.checks.connection_check import Report
from bridge.errors import BridgeError, ConfigError
from bridge.net.connections import StageError, close_quietly, endpoint_of, open_smtp
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.ops.error_reports import records
from bridge.ops.error_reports.records import MEMORY_KEYS, MEMORY_LOCK, condition_of, memory_of
from bridge.ops.error_reports.rules import PROBLEM, RECOVERED, STILL, Condition, digest
from bridge.outbound.compose import Draft, render
from bridge.outbound.smtp_transaction import transmit
from models import AlertState, SmtpAccount, utcnow
from models.db import session_scope
from routing.message_ids import make_message_id

log = logging.getLogger(__name__)


RETRY_AFTER = dt.timedelta(minutes=5)


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
    mem = memory_of(engine)
    if mem.retry_at is not None and now < mem.retry_at:
        return 0
    stored: list[Condition] = []
    if not memory_only:
        with session_scope(engine) as session:
            settings = portal.load(session)
            account = smtp_accounts.default_smtp(session)
            if account is not None:
                session.expunge(account)
            stored = [condition_of(row) for row in session.exec(select(AlertState))]
        with MEMORY_LOCK:
            mem.settings, mem.account = settings, account
    with MEMORY_LOCK:
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
        _send(engine, settings, account, items)
    except (StageError, BridgeError) as err:
        log.warning("could not send the error report (%s); trying again in %s min: %s",
                    ", ".join(c.key for _k, c in items), int(RETRY_AFTER.total_seconds() // 60), _why(err, account))
        with MEMORY_LOCK:
            mem.retry_at = now + RETRY_AFTER
        if not memory_only:
            _unclaim(engine, items, now)
        return 0
    with MEMORY_LOCK:
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
    """report_from, else the account's own address, else its username when that is an address."""
    own = settings.report_from or smtp_accounts.own_address(account)
    if own is None:
        raise ConfigError(f"the database-wide account {account.name!r} has no address of its own: give it one "
                          f"with `replybridge smtp set {account.name} --from-address ADDRESS` (or settings set "
                          "report_from ADDRESS)")
    return own


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
    draft = Draft(from_name=account.from_name or settings.mailer_name, from_addr=sender, to_addr=settings.report_to,
                  to_name=settings.report_to_name or None,
                  subject=settings.report_subject.format(condition=subject_condition(items)),
                  message_id=make_message_id(b"", sender.rsplit("@", 1)[1], None), mailer=settings.mailer_name,
                  text=body(items, now or utcnow()), auto_submitted="auto-generated")
    return sender, render(draft)


def _send(engine: Engine, settings: portal.PortalSettings, account: SmtpAccount,
          items: list[tuple[str, Condition]]) -> str:
    """Straight to the database-wide account's server; returns its reply. Raises StageError or BridgeError."""
    sender, raw = compose(settings, account, items)
    conn = open_smtp(account, bearer=bearer_for(engine, account))
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
        reply = _send(engine, settings, account, [(PROBLEM, sample)])
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


def storage_failed(engine: Engine, exc: BaseException, now: dt.datetime | None = None) -> None:
    """Record a database or disk failure and mail it at once if this process can (never raises)."""
    records.storage_failed(engine, exc, now)
    try:
        report_due(engine, now, memory_only=True)
    except Exception:  # noqa: BLE001 - logged, never reported: no loop
        log.warning("could not mail the storage failure report", exc_info=True)
