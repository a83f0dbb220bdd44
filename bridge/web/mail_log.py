"""The Mail Log page: every outbound message with its status, each attempt's server reply and hint,
and "Queue again" for what was not sent. Recruiters see their own mail only; admins also see what
retention removed (counts per status: the tally has no per-employee data)."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import true
from sqlmodel import Session, select

from bridge.errors import InputError, NotFound
from bridge.outbound import queue
from bridge.privacy import retention_tally
from bridge.web import auth
from bridge.web.deps import db
from bridge.web.templating import flash, render
from models import DeliveryAttempt, Employee, OutboundMessage

router = APIRouter()
STATUSES = queue.STATUSES
PAGE = 50


def _visible(me: Employee):  # noqa: ANN202 - a SQL expression
    return true() if me.admin else OutboundMessage.employee_id == me.id


@router.get("/log")
def mail_log(request: Request, status: str = "", before: int | None = None, session: Session = Depends(db),
             me: Employee = Depends(auth.current_employee)) -> Response:
    query = select(OutboundMessage).where(_visible(me)).order_by(OutboundMessage.id.desc()).limit(PAGE + 1)
    if status in STATUSES:
        query = query.where(OutboundMessage.status == status)
    if before is not None:
        query = query.where(OutboundMessage.id < before)
    rows = list(session.exec(query))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    history: dict[int, list[DeliveryAttempt]] = defaultdict(list)
    if rows:  # every attempt of the page in one query
        attempts = select(DeliveryAttempt).where(DeliveryAttempt.outbound_id.in_([r.id for r in rows])) \
            .order_by(DeliveryAttempt.id)
        for attempt in session.exec(attempts):
            history[attempt.outbound_id].append(attempt)
    senders = {e.id: e for e in session.exec(select(Employee).where(
        Employee.id.in_({r.employee_id for r in rows if r.employee_id})))} if rows else {}
    return render(request, session, "log.html", {
        "title": "Mail Log", "rows": rows, "history": history, "senders": senders, "statuses": STATUSES,
        "status": status if status in STATUSES else "", "older": rows[-1].id if more else None,
        "first_page": before is not None,
        "removed": retention_tally.totals(session, "outbound") if me.admin else None})


@router.post("/log/{entry_id}/requeue", dependencies=[Depends(auth.check_csrf)])
def queue_again(request: Request, entry_id: int, status: str = Form(""), session: Session = Depends(db),
                me: Employee = Depends(auth.current_employee)) -> Response:
    message = session.get(OutboundMessage, entry_id)
    if message is None:
        raise NotFound(f"no Mail Log entry {entry_id}")
    if not auth.may_see_employee_mail(me, message.employee_id):
        raise auth.Forbidden("this message was sent by another employee")
    try:
        queue.requeue(session, [entry_id])
    except InputError as err:
        session.rollback()
        flash(request, str(err))
    else:
        session.commit()
        flash(request, f"Message #{entry_id} queued again")
    return RedirectResponse(f"/log?status={status}" if status in STATUSES else "/log", status_code=303)
