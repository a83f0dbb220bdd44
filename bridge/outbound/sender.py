"""Sending what the queue holds: claim due messages, one SMTP transaction each, record every attempt.

Each SMTP account has a lane of its own (a thread, one reused connection), up to MAX_LANES at once: a
server that hangs or answers slowly holds up its own account only. While a lane is busy, the next claims
leave its account's mail alone for the other lanes. A lane whose server cannot be reached at all defers
the rest of its batch with that failure instead of waiting out the timeout once per message. Alias rate
limits are waited out (they are not retries). Each attempt's outcome goes to the Mail Log with the
server's reply and a hint (net.diagnosis); an account whose every send of the run failed is recorded for
the error reports. Each SMTP transaction is timed (bridge.metrics) and each outcome written as a step line.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from bridge import leases, metrics
from bridge.config import logs
from bridge.errors import SIGN_IN_NEEDED, ConfigError, NeedsSignIn
from bridge.net.connections import StageError, endpoint_of, with_local_address
from bridge.net.diagnosis import Diagnosis, Failure, diagnose, failure_from_exception
from bridge.ops.error_reports import records
from bridge.outbound import claims
from bridge.outbound.smtp_transaction import SmtpPool, transmit
from models import utcnow

log = logging.getLogger(__name__)
MAX_RATE_WAIT_S = 3600.0
MAX_LANES = 8  # SMTP accounts sending at once
UNREACHABLE_STAGES = frozenset({"connect", "tls"})  # no server to talk to: the account's other mail waits too


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

    def absorb(self, other: SendReport) -> None:
        """Add a lane's counts for one message to this report."""
        self.sent += other.sent
        self.deferred += other.deferred
        self.undeliverable += other.undeliverable
        self.not_sent += other.not_sent
        self.events += other.events
        self.accounts_ok |= other.accounts_ok
        self.accounts_failed.update(other.accounts_failed)


def _send_one(engine: Engine, pool: SmtpPool, claimed: claims.Claimed, report: SendReport
              ) -> tuple[Failure, Diagnosis] | None:
    """One message; returns the failure when the server could not be reached at all (connect, greeting, TLS)."""
    account = claimed.account
    if account is None:
        claims.record_not_sent(engine, claimed)
        report.not_sent += 1
        return
    started = time.perf_counter()
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
        metrics.send_took(time.perf_counter() - started, sent=False)
        failure = failure_from_exception(err.cause, err.stage)
        diag = diagnose(failure, with_local_address(endpoint_of(account), failure), claimed.envelope_from)
        _record_failure(engine, claimed, failure, diag, report)
        return (failure, diag) if err.stage in UNREACHABLE_STAGES and diag.temporary else None
    metrics.send_took(time.perf_counter() - started, sent=True)
    claims.record_sent(engine, claimed, accepted.code, accepted.reply)
    report.sent += 1
    report.accounts_ok.add(account.name)  # error reports
    logs.step(log, "sent", outbound_id=claimed.id, attempt=claimed.attempts + 1, code=accepted.code,
              account=account.name)


def _record_failure(engine: Engine, claimed: claims.Claimed, failure: Failure, diag: Diagnosis,
                    report: SendReport) -> None:
    status = claims.record_failure(engine, claimed, failure, diag)
    if status == "cancelled":  # the message was erased meanwhile
        return
    setattr(report, status, getattr(report, status) + 1)
    report.events.append(f"#{claimed.id} {status}: {failure.reply()}")
    report.accounts_failed[claimed.account.name] = f"{failure.reply()} (at {failure.stage})\nHint: {diag.hint}"
    logs.step(log, status, outbound_id=claimed.id, attempt=claimed.attempts + 1, stage=failure.stage,
              reply=logs.without_addresses(failure.reply()))


def send_due(engine: Engine, progress: Callable[[SendReport], None] | None = None,
             report: SendReport | None = None) -> SendReport:
    """Send every due message, a lane per SMTP account (counted into `report`)."""
    report = report if report is not None else SendReport()
    lanes: dict[int | None, Future[None]] = {}
    pools: dict[int | None, SmtpPool] = {}
    lock = threading.Lock()
    held = leases.Keeper(lambda ids: claims.renew(engine, ids), "outbound claims", claims.LEASE)
    with ThreadPoolExecutor(max_workers=MAX_LANES, thread_name_prefix="rb-send") as executor, held:
        try:
            while True:
                busy = frozenset(acct for acct, lane in lanes.items() if not lane.done())
                batch = claims.claim_batch(engine, busy=busy) if len(busy) < MAX_LANES else None
                if batch is None or isinstance(batch, claims.Waiting):
                    if busy:  # the busy lanes may free mail to claim, or end the run
                        wait([lanes[acct] for acct in busy], timeout=_pause(batch), return_when=FIRST_COMPLETED)
                        continue
                    if batch is None:
                        break
                    time.sleep(_pause(batch))
                    continue
                held.add(c.id for c in batch)
                for acct, items in _by_account(batch).items():
                    pool = pools.setdefault(acct, SmtpPool(engine))
                    lanes[acct] = executor.submit(_lane, engine, pool, items, report, lock, progress, held)
        finally:
            wait(list(lanes.values()))
            for pool in pools.values():
                pool.close()
    for lane in lanes.values():
        lane.result()  # a lane's own bug surfaces here, after every other lane finished
    _note_accounts(engine, report)
    return report


def _pause(waiting: claims.Waiting | None) -> float:
    if waiting is None:
        return MAX_RATE_WAIT_S
    return min(max((waiting.until - utcnow()).total_seconds(), 0.0), MAX_RATE_WAIT_S)


def _by_account(batch: list[claims.Claimed]) -> dict[int | None, list[claims.Claimed]]:
    grouped: dict[int | None, list[claims.Claimed]] = {}
    for claimed in batch:
        grouped.setdefault(claimed.account.id if claimed.account else None, []).append(claimed)
    return grouped


def _lane(engine: Engine, pool: SmtpPool, items: list[claims.Claimed], report: SendReport, lock: threading.Lock,
          progress: Callable[[SendReport], None] | None, held: leases.Keeper) -> None:
    """One account's share of a batch, in order, on its own connection."""
    unreachable: tuple[Failure, Diagnosis] | None = None
    for claimed in items:
        one = SendReport()
        if unreachable is not None:  # the server did not answer: the rest wait for their retry
            _record_failure(engine, claimed, *unreachable, one)
        else:
            unreachable = _send_one(engine, pool, claimed, one)
        held.done(claimed.id)
        with lock:
            report.absorb(one)
            if progress:
                progress(report)


def _note_accounts(engine: Engine, report: SendReport) -> None:
    """Error reports: a send that went through clears its account's condition; an account whose every send
    of this run failed is (still) failing since the condition's first_seen."""
    for name in report.accounts_ok:
        records.smtp_ok(engine, name)
    for name, detail in report.accounts_failed.items():
        if name not in report.accounts_ok:
            records.smtp_failed(engine, name, detail)
