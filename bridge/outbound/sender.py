"""Sending what the queue holds: claim due messages, one SMTP transaction each, record every attempt.

A run keeps one connection per SMTP account (outbound.smtp_transaction.SmtpPool) and waits out alias rate
limits (they are not retries). Each attempt's outcome goes to the Mail Log with the server's reply and a
hint (net.diagnosis); an account whose every send of the run failed is recorded for the error reports.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from bridge.errors import SIGN_IN_NEEDED, ConfigError, NeedsSignIn
from bridge.net.connections import StageError, endpoint_of, with_local_address
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.ops.error_reports import records
from bridge.outbound import claims
from bridge.outbound.smtp_transaction import SmtpPool, transmit
from models import utcnow

log = logging.getLogger(__name__)
MAX_RATE_WAIT_S = 3600.0


@dataclass
class SendReport:
    sent: int = 0
    deferred: int = 0
    undeliverable: int = 0
    not_sent: int = 0
    events: list[str] = field(default_factory=list)
    # error reports: SMTP accounts with a success in this run, and the last failure of the others
    accounts_ok: set[str] = field(default_factory=set)
    accounts_failed: dict[str, str] = field(default_factory=dict)


def _send_one(engine: Engine, pool: SmtpPool, claimed: claims.Claimed, report: SendReport) -> None:
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


def send_due(engine: Engine, progress: Callable[[SendReport], None] | None = None,
             report: SendReport | None = None) -> SendReport:
    """Send every due message, one connection per account for the run (counted into `report`)."""
    report = report if report is not None else SendReport()
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


def _note_accounts(engine: Engine, report: SendReport) -> None:
    """Error reports: a send that went through clears its account's condition; an account whose every send
    of this run failed is (still) failing since the condition's first_seen."""
    for name in report.accounts_ok:
        records.smtp_ok(engine, name)
    for name, detail in report.accounts_failed.items():
        if name not in report.accounts_ok:
            records.smtp_failed(engine, name, detail)
