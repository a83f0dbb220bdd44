"""`replybridge test loop ALIAS`: prove an installation end to end, leg by leg.

A signed probe goes from the alias, through its SMTP account, to the employee's numbered address;
it must come back through the SMTP receiver (`serve` running) or a polled catch-all folder and route to
that employee. Each leg's time is printed, or which leg broke. By hand the command polls the catch-all
folders itself while it waits; the scheduled probe (bridge.ops.loop_probes) leaves that to the pollers, as
a poller stuck or not running is one of the things it is there to see. A probe that does not come back
is looked for in the poll folders (bridge.checks.loop_trace): waiting there, the poller did not pick it up;
in none of them, it was never delivered to the bridge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge import crypto, portal
from bridge.accounts import aliases
from bridge.accounts.oauth.tokens import bearer_for
from bridge.checks import loop_trace
from bridge.errors import BridgeError
from bridge.inbound.imap import one_pass
from bridge.net.connections import StageError, close_quietly, endpoint_of, open_smtp
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.outbound.compose import Draft, render
from bridge.outbound.queue import account_for_alias
from bridge.outbound.smtp_transaction import transmit
from models import Employee, ImapServer, InboundMessage, SmtpAccount, utcnow
from models.db import session_scope
from routing.message_ids import make_message_id, make_probe_token
from routing.router import PROBE_HEADER

# The broken legs, as `test loop` prints them ("Broken leg: ...")
LEG_NO_ACCOUNT = "send"
LEG_REFUSED = "send refused"
LEG_LOST = "never arrived"
LEG_NOT_PICKED_UP = "not picked up"
LEG_NOT_ROUTED = "arrived but was not routed"
LEG_ROUTED_WRONG = "arrived but routed wrong"

# ... and in the words of an error report's title
LEG_WORDS = {
    LEG_NO_ACCOUNT: "sending failed",
    LEG_REFUSED: "sending failed",
    LEG_LOST: "not delivered to the bridge nor to its catch-all folder",
    LEG_NOT_PICKED_UP: "delivered to the catch-all folder but not picked up by the poller",
    LEG_NOT_ROUTED: "arrived but not routed",
    LEG_ROUTED_WRONG: "arrived but routed wrong",
}


@dataclass
class LoopReport:
    steps: list[str] = field(default_factory=list)
    ok: bool = True
    broken_leg: str | None = None
    diagnosis: str | None = None
    message_id: str | None = None  # the probe's, once composed
    stopped: bool = False  # the process is stopping: the probe was given up, with no verdict

    def fail(self, leg: str, diagnosis: str) -> LoopReport:
        self.ok, self.broken_leg, self.diagnosis = False, leg, diagnosis
        return self

    def lines(self) -> list[str]:
        if self.ok:
            return [*self.steps, "Status: OK"]
        if self.stopped:
            return [*self.steps, "Status: STOPPED (given up: the process is stopping)"]
        return [*self.steps, "Status: FAILED", f"Broken leg: {self.broken_leg}", f"Diagnosis: {self.diagnosis}"]


@dataclass(frozen=True)
class Probe:
    """A composed probe and where it goes."""

    raw: bytes
    message_id: str
    sender: str
    to: str
    number: int
    account: SmtpAccount | None


@dataclass(frozen=True)
class Waiting:
    """How `run` waits for the probe: `timeout` seconds, looking every `look_every`; with `poll`, it polls the
    catch-all folders itself every `poll_every` (by hand), else leaves that to the pollers (on a schedule);
    `stopping` says when to give up at once (the process is stopping)."""

    timeout: float = 120.0
    poll: bool = True
    poll_every: float = 2.0
    look_every: float = 0.2
    stopping: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class _Seen:
    """The probe's stored copy, as the wait reads it."""

    source: str
    routed: bool
    route: str | None
    employee_id: int | None
    reason: str | None


def _probe(engine: Engine, description: str) -> Probe:
    """Compose the probe from the alias, to its employee's numbered address."""
    with session_scope(engine) as session:
        alias = aliases.get_alias(session, description)
        employee = session.get(Employee, alias.employee_id)
        settings = portal.load(session)
        numbered = settings.numbered()
        to = numbered.make(employee.number)
        key = crypto.signing_key("message-id")
        message_id = make_message_id(key, numbered.primary.domain, None)
        raw = render(Draft(from_name=alias.display_name, from_addr=alias.from_address, to_addr=to,
                           subject=f"replybridge loop test {message_id}", message_id=message_id,
                           mailer=settings.mailer_name, text="A loop test of replybridge. It needs no answer.\n",
                           auto_submitted="auto-generated", date=utcnow()))
        raw = f"{PROBE_HEADER.title()}: {make_probe_token(key)}\r\n".encode() + raw
        account = account_for_alias(session, alias.id, automated=False)
        if account is not None:
            session.expunge(account)
        return Probe(raw, message_id, alias.from_address, to, employee.number, account)


def _poll_catch_alls(engine: Engine) -> None:
    with session_scope(engine) as session:
        ids = session.exec(select(ImapServer.id).where(ImapServer.poll_folder.is_not(None))).all()
    for server_id in ids:
        one_pass.poll_once(engine, server_id, owner="test-loop")


def run(engine: Engine, description: str, timeout: float = 120.0, poll_every: float = 2.0, *,
        waiting: Waiting | None = None) -> LoopReport:
    """Send a probe from the alias and wait until it routes back (`waiting`, else `timeout` and `poll_every`)."""
    waiting = waiting or Waiting(timeout=timeout, poll_every=poll_every)
    report = LoopReport()
    probe = _probe(engine, description)
    report.message_id = probe.message_id
    if not _send(engine, probe, report):
        return report
    sent_at = time.monotonic()
    seen = _wait(engine, probe, report, waiting)
    if seen is None:
        return report
    report.steps.append(f"Came back by {seen.source}: {time.monotonic() - sent_at:.2f} s after sending")
    with session_scope(engine) as session:
        employee_id = session.exec(select(Employee.id).where(Employee.number == probe.number)).one()
    if seen.route != "employee" or seen.employee_id != employee_id:
        return report.fail(LEG_ROUTED_WRONG, f"routed to {seen.route}: {seen.reason}. Check the reply address "
                                             "template and accepted domains (`replybridge settings show`) and that "
                                             f"employee {probe.number} is active")
    report.steps.append(f"Routed to employee {probe.number}: {seen.reason}")
    return report


def _send(engine: Engine, probe: Probe, report: LoopReport) -> bool:
    """The first leg: the alias's SMTP account takes the probe. False (the report failed) when it does not."""
    account = probe.account
    if account is None:
        report.fail(LEG_NO_ACCOUNT, "the alias has no SMTP account and there is no database-wide account")
        return False
    started = time.monotonic()
    try:
        conn = open_smtp(account, bearer=bearer_for(engine, account))
        try:
            transmit(conn, probe.sender, [probe.to], probe.raw)
        finally:
            close_quietly(conn)
    except StageError as err:
        failure = failure_from_exception(err.cause, err.stage)
        report.fail(LEG_REFUSED, f"{failure.reply()}. {diagnose(failure, endpoint_of(account), probe.sender).hint}")
        return False
    except BridgeError as err:  # e.g. the account's sign-in must be renewed
        report.fail(LEG_REFUSED, f"SMTP account {account.name!r}: {err}")
        return False
    took = time.monotonic() - started
    report.steps.append(f"Sent {probe.message_id} from {probe.sender} to {probe.to} via {account.name}: {took:.2f} s")
    return True


def _look(engine: Engine, message_id: str) -> _Seen | None:
    with session_scope(engine) as session:
        row = session.exec(select(InboundMessage).where(InboundMessage.message_id == message_id)).first()
        if row is None:
            return None
        return _Seen(row.source, row.routed_at is not None, row.route, row.employee_id, row.reason)


def _wait(engine: Engine, probe: Probe, report: LoopReport, waiting: Waiting) -> _Seen | None:
    """Until the probe's copy is routed; None (the report failed, or stopped) when it is not in time."""
    sent_at, next_poll = time.monotonic(), 0.0
    while True:
        seen = _look(engine, probe.message_id)
        if seen is not None and seen.routed:
            return seen
        if waiting.stopping():
            report.ok, report.stopped = False, True
            return None
        if time.monotonic() - sent_at > waiting.timeout:
            _lost(engine, probe, report, seen, waiting.timeout)
            return None
        if waiting.poll and time.monotonic() >= next_poll:
            _poll_catch_alls(engine)
            next_poll = time.monotonic() + waiting.poll_every
        time.sleep(waiting.look_every)


def _lost(engine: Engine, probe: Probe, report: LoopReport, seen: _Seen | None, timeout: float) -> None:
    """The probe is not back in time: which leg broke, and what to check."""
    if seen is not None:
        report.fail(LEG_NOT_ROUTED, f"the probe was stored (by {seen.source}) but not routed within {timeout:g} s: "
                                    "check that routing runs (`serve`'s routing process, or `replybridge worker`) "
                                    "and what its log says")
        return
    trace = loop_trace.look(engine, probe.message_id)
    if trace.waiting:
        report.fail(LEG_NOT_PICKED_UP, f"the probe was delivered to {'; '.join(trace.waiting)} but not fetched "
                                       f"within {timeout:g} s: check that `serve` runs and watches that folder, and "
                                       "that its poller is not stuck (restarting `serve` starts its pollers afresh)")
        return
    domain = probe.to.rsplit("@", 1)[1]
    looked = (f"it is not waiting in the polled folder(s) {', '.join(trace.looked)} either"
              if trace.looked else "no IMAP server has a poll folder")
    could_not = f" (could not look into {'; '.join(trace.problems)})" if trace.problems else ""
    report.fail(LEG_LOST, f"no copy of the probe came back within {timeout:g} s, and {looked}{could_not}: check "
                          f"that mail for {probe.to} still reaches the bridge: the MX record of {domain}, and any "
                          "forwarding or routing rule (an Exchange connector or forwarding rule, a Google Workspace "
                          "routing rule) that sends it to the SMTP receiver `serve` runs or into the polled catch-all "
                          "folder")
