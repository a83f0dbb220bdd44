"""/outbound: queue a message (202: the worker sends it), the Mail Log (keyset paged), queue again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from sqlmodel import Session, select

from bridge import audit, json_views
from bridge.accounts import aliases, employees
from bridge.accounts.api_tokens import Principal
from bridge.errors import BridgeError, NotFound
from bridge.inbound import message_content, triage
from bridge.input_checks import check_address, refuse_line_breaks
from bridge.outbound import queue
from bridge.web.api import batch, paging
from bridge.web.api.auth import may_see_mail, may_see_message, principal
from bridge.web.api.errors import ApiForbidden, BadField, Conflict
from bridge.web.api.schemas import MAX_ID, MailLog, MailLogPage, OutboundIn, Problem, Status
from bridge.web.deps import db
from models import Employee, OutboundMessage

router = APIRouter(tags=["outbound"])

ERRORS = {401: {"model": Problem, "description": "no valid bearer token"},
          403: {"model": Problem, "description": "outside the token's employee"}}
NOT_FOUND = {404: {"model": Problem, "description": "no such Mail Log entry"}}
REQUEUABLE = ("not_sent", "undeliverable")


def _field(loc: str, check, *args):  # noqa: ANN001, ANN202 - a bridge check and its arguments
    """Run a bridge check; its error names `loc` (the body field the value came from)."""
    try:
        return check(*args)
    except BridgeError as err:
        raise BadField(("body", loc), str(err)) from None


def _request(session: Session, p: Principal, body: OutboundIn) -> queue.Request:
    """Check each field on its own (so a 422 names it), then the bridge's Request."""
    if not p.admin and (p.employee is None or body.employee_number != p.employee.number):
        raise ApiForbidden(f"this token sends only as employee {p.employee.number if p.employee else '?'}")
    employee: Employee = _field("employee_number", employees.get_employee, session, body.employee_number)
    if not employee.active:
        raise BadField(("body", "employee_number"), f"employee {employee.number} is inactive and cannot send")
    _field("alias", aliases.alias_for, session, employee, body.alias)
    _field("to", check_address, body.to, "recipient")
    _field("subject", lambda: refuse_line_breaks(subject=body.subject))
    in_reply_to, references, inbound_id = None, (), None
    if body.in_reply_to is not None:
        try:
            answered = triage.get_inbound(session, body.in_reply_to)
        except NotFound as err:
            raise BadField(("body", "in_reply_to"), str(err)) from None
        if not may_see_message(p, answered):
            raise ApiForbidden(f"message {answered.id} belongs to another employee")
        headers = message_content.headers_of(answered.raw)
        in_reply_to, references, inbound_id = headers.message_id, message_content.reply_references(headers), answered.id
    return queue.Request(employee_number=employee.number, alias=body.alias, to=body.to, subject=body.subject,
                            text=body.body, html=body.html, in_reply_to=in_reply_to, references=references,
                            inbound_id=inbound_id)


@router.post("/outbound", status_code=202, response_model=MailLog, responses=ERRORS,
             summary="Queue one message; the worker sends it (follow it in GET /outbound)")
def send(body: OutboundIn, p: Principal = Depends(principal), session: Session = Depends(db)) -> dict[str, object]:
    message = queue.queue(session, _request(session, p, body))
    if body.in_reply_to is not None:  # an answer to a received message, as the page's "Send reply"
        audit.record(session, "send_reply", f"message {body.in_reply_to}", f"Mail Log #{message.id}")
    session.commit()
    return json_views.log_json(session, message)


@router.get("/outbound", response_model=MailLogPage, responses=ERRORS, summary="The Mail Log, newest first")
def mail_log(status: Annotated[Status | None, Query()] = None,
             limit: Annotated[int, Query(ge=1, le=200)] = 50,
             cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the page before")] = None,
             p: Principal = Depends(principal), session: Session = Depends(db)) -> dict[str, object]:
    m = OutboundMessage
    query = select(m)
    if status is not None:
        query = query.where(m.status == status)
    if not p.admin:
        query = query.where(m.employee_id == p.employee_id)
    if cursor:
        query = query.where(m.id < paging.mail_position(cursor))
    rows = session.exec(query.order_by(m.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    return {"items": batch.mail_items(session, page),
            "next_cursor": paging.after_mail(page[-1].id) if len(rows) > limit else None}


@router.post("/outbound/{outbound_id}/requeue", response_model=MailLog, summary="Queue a not_sent or undeliverable "
             "message again, with fresh attempts", responses={**ERRORS, **NOT_FOUND, 409: {
                 "model": Problem, "description": "only not_sent and undeliverable messages can be queued again"}})
def requeue(outbound_id: Annotated[int, Path(ge=1, le=MAX_ID)], p: Principal = Depends(principal),
            session: Session = Depends(db)) -> dict[str, object]:
    message = session.get(OutboundMessage, outbound_id)
    if message is None:
        raise NotFound(f"no Mail Log entry {outbound_id}")
    if not may_see_mail(p, message):
        raise ApiForbidden(f"Mail Log entry {outbound_id} belongs to another employee")
    if message.status not in REQUEUABLE:
        raise Conflict(f"message {outbound_id} is {message.status}; only not_sent and undeliverable messages can be "
                       "queued again")
    queue.requeue(session, [outbound_id])
    session.commit()
    return json_views.log_json(session, message)
