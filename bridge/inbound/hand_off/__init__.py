"""How a routed reply reaches its recruiter: the registry of hand-off modes (the employee's setting).

One file per mode, each with `plan(session, row, employee, settings)`, run once after routing or
assignment inside that transaction:
- forward: the original bytes under Resent-* headers, to the employee's own address, as an entry of the
  outbound queue (its retries, Mail Log and hints); the stored reply is never touched.
- imap: APPEND into the INBOX of the IMAP server linked to the employee's default alias, so their mail
  client shows sent and received side by side; own state, backoff and give-up, idempotent (`imap.run`).
- none: the pages and the API only.
A reply that names the recruiter's own address too (a reply to all, where an alias's Reply-To holds it) has
reached them directly: it is not handed off a second time (delivery `direct`).
The names are the employee setting's (bridge.accounts.employees.HAND_OFF_MODES); a missing file stops
the import rather than a hand-off. A hand-off set going is written as a `handed_off` step line once its
transaction commits.
"""

from __future__ import annotations

import logging
from types import ModuleType

from sqlmodel import Session, select

from bridge import portal
from bridge.accounts.employees import HAND_OFF_MODES
from bridge.config import logs
from bridge.inbound.hand_off import forward, imap, none
from bridge.inbound.parse import read_headers
from bridge.memo import remember, remembered
from models import Alias, Employee, InboundMessage, OutboundMessage
from routing.addresses import addresses_of
from routing.router import Headers

log = logging.getLogger(__name__)
MODES: dict[str, ModuleType] = {"forward": forward, "imap": imap, "none": none}
if set(MODES) != set(HAND_OFF_MODES):
    raise RuntimeError(f"hand-off modes {sorted(HAND_OFF_MODES)} need a module each: {sorted(MODES)}")


def plan(session: Session, row: InboundMessage, settings: portal.PortalSettings | None = None,
         headers: Headers | None = None) -> None:
    """After routing or assignment: set up the hand-off to the row's employee, once. `headers`: the message's,
    where the caller has read them already."""
    if row.employee_id is None or row.delivery != "none":
        return
    if remembered(session, ("forwarded", row.id), lambda: session.exec(
            select(OutboundMessage.id).where(OutboundMessage.inbound_id == row.id)).first() is not None):
        return
    employee = session.get(Employee, row.employee_id)
    if employee.delivery != "none" and reached_directly(session, row, employee, headers):
        row.delivery = "direct"
    else:
        MODES[employee.delivery].plan(session, row, employee, settings)
    session.add(row)
    if row.delivery != "none":
        logs.step_on_commit(session, log, "handed_off", inbound_id=row.id, employee=employee.number,
                            mode="direct" if row.delivery == "direct" else employee.delivery, state=row.delivery)


def forwarded_many(session: Session, ids: list[int]) -> None:
    """Which of these messages have a forward already (a message routed again), in one query remembered for
    this session (bridge.memo), for `plan`."""
    done = set(session.exec(select(OutboundMessage.inbound_id).where(OutboundMessage.inbound_id.in_(ids))))
    for inbound_id in ids:
        remember(session, ("forwarded", inbound_id), inbound_id in done)


def reached_directly(session: Session, row: InboundMessage, employee: Employee,
                     headers: Headers | None = None) -> bool:
    """Whether the reply's To or Cc holds the employee's own address or an alias's own Reply-To."""
    own = {employee.email.lower()} | remembered(session, ("alias_reply_to", employee.id), lambda: {
        reply_to.lower() for reply_to in session.exec(
            select(Alias.reply_to).where(Alias.employee_id == employee.id, Alias.reply_to.is_not(None))).all()})
    if headers is not None:
        values = [*headers.all("to"), *headers.all("cc")]
    else:
        try:
            read = read_headers(row.raw)
        except Exception:  # noqa: BLE001 - unreadable headers: hand it off, as if it named nobody
            return False
        values = [str(value) for name in ("to", "cc") for value in read.get_all(name, [])]
    named = {addr.lower() for value in values for _n, addr in addresses_of(value)}
    return bool(own & named)
