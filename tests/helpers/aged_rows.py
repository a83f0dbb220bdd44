"""Rows made as if they had been stored days ago, for the retention tests: inbound messages, Mail Log
entries with their attempts, webhook events and audit entries, written straight into the database."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, DeliveryAttempt, Employee, InboundMessage, OutboundMessage, Webhook, WebhookDelivery

_serial = itertools.count(1)


def ago(days: float) -> dt.datetime:
    """That long before now, the clock read at each call: a lease `ago(-1 / 288)` ends five minutes after it is
    made, however long the suite ran before (a moment fixed at import had run out in a long run)."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=days)


def employee_id(engine: Engine, number: int = 1042) -> int:
    with Session(engine) as s:
        return s.exec(select(Employee.id).where(Employee.number == number)).one()


def inbound(engine: Engine, days: float, *, route: str | None = "employee", delivery: str = "delivered",
            triage: str | None = None, triaged_days: float | None = None, outbound_id: int | None = None) -> int:
    """An inbound message received `days` ago; route None: stored but never routed."""
    n = next(_serial)
    row = InboundMessage(dedup_key=f"<aged-{n}@cand.example>", message_id=f"<aged-{n}@cand.example>",
                         raw=b"Subject: Monday\r\n\r\nMonday works for me.\r\n", size=40, source="smtp",
                         received_at=ago(days), from_addr=f"c{n}@cand.example", subject="Monday",
                         reply_text="Monday works for me.", route=route, kind="reply" if route else None,
                         routed_at=ago(days) if route else None, delivery=delivery, triage=triage,
                         triaged_at=ago(triaged_days) if triaged_days is not None else None,
                         employee_id=employee_id(engine) if route == "employee" else None, outbound_id=outbound_id)
    return _add(engine, row)


def outbound(engine: Engine, days: float, *, status: str = "sent", sent_folder: str = "appended", attempts: int = 1,
             inbound_id: int | None = None, purpose: str = "message") -> int:
    """A Mail Log entry queued `days` ago, with `attempts` attempts."""
    n = next(_serial)
    row = OutboundMessage(message_id=f"<out-{n}@example.test>", employee_id=employee_id(engine),
                          from_addr="jobs+1042@example.test", envelope_from="jobs+1042@example.test",
                          to_addr=f"c{n}@cand.example", subject="Interview", raw=b"Subject: Interview\r\n\r\nHello\r\n",
                          status=status, sent_folder=sent_folder, attempts=attempts, created_at=ago(days),
                          next_attempt_at=ago(days), inbound_id=inbound_id, purpose=purpose)
    entry = _add(engine, row)
    with Session(engine) as s:
        s.add_all(DeliveryAttempt(outbound_id=entry, number=k + 1, at=ago(days), outcome="sent" if status == "sent"
                                  else "deferred") for k in range(attempts))
        s.commit()
    return entry


def webhook_event(engine: Engine, days: float, *, status: str = "delivered",
                  claimed_until: dt.datetime | None = None) -> int:
    with Session(engine) as s:
        hook = s.exec(select(Webhook)).first()
        if hook is None:
            hook = Webhook(url="https://ats.example/hook", secret="unused")
            s.add(hook)
            s.commit()
        hook_id = hook.id
    n = next(_serial)
    return _add(engine, WebhookDelivery(webhook_id=hook_id, event_id=f"evt_{n}", event_type="message.routed",
                                        payload='{"data": {"subject": "Monday"}}', status=status, created_at=ago(days),
                                        next_attempt_at=ago(days), claimed_until=claimed_until))


def audit_entries(engine: Engine, days: float, count: int = 1, action: str = "assign") -> None:
    with Session(engine) as s:
        s.add_all(AuditEvent(at=ago(days), actor="employee 1042 (ana@example.test)", action=action,
                             target=f"message {k}") for k in range(count))
        s.commit()


def _add(engine: Engine, row: object) -> int:
    with Session(engine) as s:
        s.add(row)
        s.commit()
        return row.id  # type: ignore[attr-defined]
