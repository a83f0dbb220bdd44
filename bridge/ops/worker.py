"""The worker: send what is due, then file sent mail in Sent folders, then deliver webhooks.

`run_once` does all work due now, waiting out alias rate limits (they are not retries), and
leaves retries that are not yet due queued. `serve` calls it on a schedule, and delivers webhooks
in a job of their own so a slow receiver never holds up sending.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from bridge.errors import SIGN_IN_NEEDED, ConfigError, NeedsSignIn
from bridge.inbound import hand_off, pipeline
from bridge.net.connections import StageError, endpoint_of, with_local_address
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.ops.error_reports import records, report_mail
from bridge.ops.webhooks import dispatch
from bridge.outbound import claims, sent_folder
from bridge.outbound.smtp_transaction import SmtpPool, transmit
from models import utcnow

log = logging.getLogger(__name__)
MAX_RATE_WAIT_S = 3600.0


@dataclass
class RunReport:
    sent: int = 0
    deferred: int = 0
    undeliverable: int = 0
    not_sent: int = 0
    filed: int = 0
    routed: int = 0
    delivered: int = 0
    webhooks: int = 0  # webhook deliveries the receivers accepted
    reported: int = 0  # conditions listed in the error report mailed by this run (0: none mailed)
    events: list[str] = field(default_factory=list)
    # error reports: SMTP accounts with a success in this run, and the last failure of the others
    accounts_ok: set[str] = field(default_factory=set)
    accounts_failed: dict[str, str] = field(default_factory=dict)


def _send_one(engine: Engine, pool: SmtpPool, claimed: claims.Claimed, report: RunReport) -> None:
    account = claimed.account
    if account is None:
        claims.record_not_sent(engine, claimed)
        report.not_sent += 1
        return
    try:
        conn = pool.get(account)
        accepted = transmit(conn, claimed.envelope_from, [claimed.to_addr], claimed.raw)
    except NeedsSignIn as err:  # waits as not_sent, attempts kept, and goes out after the new sign-in
        claims.record_not_sent(engine, claimed, f"{SIGN_IN_NEEDED}: {err}", "Sign the account in again; the "
                                   "message is then sent by itself.")
        report.not_sent += 1
        return
    except ConfigError as err:  # e.g. a secret that no longer decrypts
        claims.record_not_sent(engine, claimed, str(err), "Set the account's password again, then queue "
                                                              "the message again.")
        report.not_sent += 1
        report.accounts_failed[account.name] = f"{err}\nHint: set the account's password again."  # error reports
        return
    except StageError as err:
        if not isinstance(err.cause, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
            pool.drop(account)  # the connection is in an unknown state; a refusal leaves it usable
        failure = failure_from_exception(err.cause, err.stage)
        diag = diagnose(failure, with_local_address(endpoint_of(account), failure), claimed.envelope_from)
        status = claims.record_failure(engine, claimed, failure, diag)
        setattr(report, status, getattr(report, status) + 1)
        report.events.append(f"#{claimed.id} {status}: {failure.reply()}")
        report.accounts_failed[account.name] = f"{failure.reply()} (at {failure.stage})\nHint: {diag.hint}"  # reports
        log.warning("message %s %s: %s", claimed.id, status, failure.reply())
        return
    claims.record_sent(engine, claimed, accepted.code, accepted.reply)
    report.sent += 1
    report.accounts_ok.add(account.name)  # error reports
    log.info("message %s sent to %s via %s", claimed.id, claimed.to_addr, account.name)


def send_due(engine: Engine, progress: Callable[[RunReport], None] | None = None) -> RunReport:
    """Send every due message, one connection per account for the run."""
    report = RunReport()
    pool = SmtpPool(engine)
    try:
        while True:
            batch = claims.claim_batch(engine)
            if batch is None:
                break
            if isinstance(batch, claims.Waiting):
                pause = (batch.until - utcnow()).total_seconds()
                time.sleep(min(max(pause, 0.0), MAX_RATE_WAIT_S))
                continue
            for claimed in batch:
                _send_one(engine, pool, claimed, report)
                if progress:
                    progress(report)
    finally:
        pool.close()
    _note_accounts(engine, report)
    return report


def _note_accounts(engine: Engine, report: RunReport) -> None:
    """Error reports: a send that went through clears its account's condition; an account whose every send
    of this run failed is (still) failing since the condition's first_seen."""
    for name in report.accounts_ok:
        records.smtp_ok(engine, name)
    for name, detail in report.accounts_failed.items():
        if name not in report.accounts_ok:
            records.smtp_failed(engine, name, detail)


def run_once(engine: Engine, progress: Callable[[RunReport], None] | None = None,
             deliver_webhooks: bool = True) -> RunReport:
    """All work due now: stored messages not yet routed, the send queue, the Sent-folder appends, then
    the webhooks (last, so the events of this run go out too; `serve` runs them in their own job)."""
    routed = pipeline.finish_unrouted(engine)
    report = send_due(engine, progress)
    report.routed = routed
    report.filed = sent_folder.run(engine)
    report.delivered = hand_off.run(engine)
    if deliver_webhooks:
        report.webhooks = dispatch.deliver_due(engine)
    records.storage_ok(engine)  # this run used the database: its (in-memory) failure conditions are over
    report.reported = _report_errors(engine)
    return report


def _report_errors(engine: Engine) -> int:
    """The error report mail of every condition due now; its own failure is logged, never raised or reported."""
    try:
        return report_mail.report_due(engine)
    except Exception:  # noqa: BLE001 - reporting must not fail the run it follows
        log.warning("error reports: checking for due conditions failed", exc_info=True)
        return 0
