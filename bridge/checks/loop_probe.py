"""`replybridge test loop ALIAS`: prove an installation end to end, leg by leg.

A signed probe goes from the alias, through its SMTP account, to the employee's numbered address;
it must come back through the SMTP receiver (`serve` running) or a polled catch-all folder (polled
here while waiting) and route to that employee. Each leg's time is printed, or which leg broke.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge import crypto, portal
from bridge.accounts import aliases
from bridge.accounts.oauth.tokens import bearer_for
from bridge.inbound.imap import one_pass
from bridge.net.connections import StageError, close_quietly, endpoint_of, open_smtp
from bridge.net.diagnosis import diagnose, failure_from_exception
from bridge.outbound.compose import Draft, render
from bridge.outbound.queue import account_for_alias
from bridge.outbound.smtp_transaction import transmit
from models import Employee, ImapServer, InboundMessage, utcnow
from models.db import session_scope
from routing.message_ids import make_message_id, make_probe_token
from routing.router import PROBE_HEADER


@dataclass
class LoopReport:
    steps: list[str] = field(default_factory=list)
    ok: bool = True
    broken_leg: str | None = None
    diagnosis: str | None = None

    def fail(self, leg: str, diagnosis: str) -> LoopReport:
        self.ok, self.broken_leg, self.diagnosis = False, leg, diagnosis
        return self

    def lines(self) -> list[str]:
        if self.ok:
            return [*self.steps, "Status: OK"]
        return [*self.steps, "Status: FAILED", f"Broken leg: {self.broken_leg}", f"Diagnosis: {self.diagnosis}"]


def _probe(engine: Engine, description: str) -> tuple[bytes, str, str, str, int, object]:
    """Compose the probe: (raw, Message-ID, from, to, employee number, SMTP account)."""
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
        return raw, message_id, alias.from_address, to, employee.number, account


def _poll_catch_alls(engine: Engine) -> None:

    with session_scope(engine) as session:
        ids = session.exec(select(ImapServer.id).where(ImapServer.poll_folder.is_not(None))).all()
    for server_id in ids:
        one_pass.poll_once(engine, server_id, owner="test-loop")


def run(engine: Engine, description: str, timeout: float = 120.0, poll_every: float = 2.0) -> LoopReport:
    report = LoopReport()
    raw, message_id, sender, to, number, account = _probe(engine, description)
    if account is None:
        return report.fail("send", "the alias has no SMTP account and there is no database-wide account")
    started = time.monotonic()
    try:
        conn = open_smtp(account, bearer=bearer_for(engine, account))
        try:
            transmit(conn, sender, [to], raw)
        finally:
            close_quietly(conn)
    except StageError as err:
        failure = failure_from_exception(err.cause, err.stage)
        return report.fail("send refused", f"{failure.reply()}. {diagnose(failure, endpoint_of(account), sender).hint}")
    took = time.monotonic() - started
    report.steps.append(f"Sent {message_id} from {sender} to {to} via {account.name}: {took:.2f} s")

    sent_at, next_poll = time.monotonic(), 0.0
    while True:
        with session_scope(engine) as session:
            row = session.exec(select(InboundMessage).where(InboundMessage.message_id == message_id)).first()
            found = (row.source, row.routed_at is not None, row.route, row.employee_id, row.reason) if row else None
            employee_id = session.exec(select(Employee.id).where(Employee.number == number)).one()
        if found and found[1]:
            break
        if time.monotonic() - sent_at > timeout:
            where = "arrived but was not routed" if found else "never arrived"
            return report.fail(where, f"no copy of the probe came back within {timeout:g} s: check that mail for "
                                      f"{to} reaches the bridge (MX or forwarding to the SMTP receiver that `serve` "
                                      "runs, or delivery into a polled catch-all folder)")
        if time.monotonic() >= next_poll:
            _poll_catch_alls(engine)
            next_poll = time.monotonic() + poll_every
        time.sleep(0.2)
    source, _routed, route, routed_employee, reason = found
    report.steps.append(f"Came back by {source}: {time.monotonic() - sent_at:.2f} s after sending")
    if route != "employee" or routed_employee != employee_id:
        return report.fail("arrived but routed wrong", f"routed to {route}: {reason}")
    report.steps.append(f"Routed to employee {number}: {reason}")
    return report
