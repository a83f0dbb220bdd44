"""/messages: the inbound list (keyset paged), one message with its content, its attachments,
assign and dismiss."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import and_, or_, tuple_
from sqlmodel import Session, select

from bridge import json_views
from bridge.accounts import employees
from bridge.accounts.api_tokens import Principal
from bridge.errors import FieldError, NotFound
from bridge.inbound import message_content, search, triage
from bridge.web.api import batch, paging
from bridge.web.api.auth import may_see_message, principal
from bridge.web.api.errors import ApiForbidden, BadField, Conflict
from bridge.web.api.schemas import MAX_ID, MAX_NUMBER, AssignIn, Inbound, InboundPage, MessageDetail, Problem, Route
from bridge.web.deps import db
from models import Employee, InboundMessage

router = APIRouter(tags=["messages"])

LIST_ERRORS = {401: {"model": Problem, "description": "no valid bearer token"},
               403: {"model": Problem, "description": "outside the token's employee"}}
ERRORS = {**LIST_ERRORS, 404: {"model": Problem, "description": "no such message"}}
CONFLICT = {409: {"model": Problem, "description": "the message is not an open Unassigned message"}}
MessageId = Annotated[int, Path(ge=1, le=MAX_ID, description="the inbound message id")]


def visible(session: Session, p: Principal, message_id: int) -> InboundMessage:
    row = triage.get_inbound(session, message_id)
    if not may_see_message(p, row):
        raise ApiForbidden(f"message {message_id} belongs to another employee")
    return row


@router.get("/messages", response_model=InboundPage, responses=LIST_ERRORS,
            summary="Inbound messages, newest first; with q, those matching a search, best first",
            description="Without `q`, newest first. With `q`, full-text search by address, name, subject, reply "
            "text and attachment file names: every word of `q` (split on anything but letters and digits) must "
            "match a whole word, the last one the start of a word; best matches first (a subject or sender match "
            "above a text-only one), "
            f"newest first among equals. Only the newest {search.RANKED:,} matches are ranked and listed. `route` "
            f"and `employee` narrow either list. A bad `q` (empty, over {search.MAX_CHARS} characters or "
            f"{search.MAX_TERMS} words) is a 422 naming `q`.")
def list_messages(
        route: Annotated[Route | None, Query(description="unassigned: the open Unassigned messages")] = None,
        employee: Annotated[int | None, Query(description="only this employee's messages (by number)",
                                              ge=0, le=MAX_NUMBER)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the page before")] = None,
        q: Annotated[str | None, Query(max_length=search.MAX_CHARS, description=(
            "search words: messages matching every word (the last as a prefix), best first"))] = None,
        p: Principal = Depends(principal), session: Session = Depends(db)) -> dict[str, object]:
    if q is not None:
        employee_id = _employee_id(session, p, employee) if employee is not None else None
        return _search(session, p, q, search.Filters(employee_id=employee_id, route=route), limit, cursor)
    m = InboundMessage
    query = select(m).where(m.routed_at.is_not(None))
    if route is not None:
        query = query.where(m.route == route)
        if route == "unassigned":
            query = query.where(m.triage == "open")
    if not p.admin:
        query = query.where(or_(m.employee_id == p.employee_id, and_(m.route == "unassigned", m.employee_id.is_(None))))
    if employee is not None:
        query = query.where(m.employee_id == _employee_id(session, p, employee))
    if cursor:
        at, after = paging.message_position(cursor)
        # a row-value comparison: the index ix_inbound_message_inbox (route, triage, received_at, id) seeks to it
        query = query.where(tuple_(m.received_at, m.id) < tuple_(at, after))
    rows = session.exec(query.order_by(m.received_at.desc(), m.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    more = len(rows) > limit
    return {"items": batch.inbound_items(session, page),
            "next_cursor": paging.after_message(page[-1].received_at, page[-1].id) if more else None}


def _search(session: Session, p: Principal, q: str, filters: search.Filters, limit: int,
            cursor: str | None) -> dict[str, object]:
    offset = paging.search_position(cursor) if cursor else 0
    try:
        found = search.search(session, q, search.Viewer(p.admin, p.employee_id), filters, limit=limit, offset=offset)
    except FieldError as err:
        raise BadField(("query", err.field), str(err)) from None
    return {"items": batch.inbound_items(session, search.rows_in_order(session, found.ids)),
            "next_cursor": paging.after_search(offset + len(found.ids)) if found.more else None}


def _employee_id(session: Session, p: Principal, number: int) -> int:
    if not p.admin and (p.employee is None or number != p.employee.number):
        raise ApiForbidden(f"this token lists only employee {p.employee.number if p.employee else '?'}'s messages")
    found = session.exec(select(Employee.id).where(Employee.number == number)).first()
    if found is None:
        raise BadField(("query", "employee"), f"no employee number {number}")
    return found


@router.get("/messages/{message_id}", response_model=MessageDetail, responses=ERRORS,
            summary="One inbound message with its text, sanitized HTML and attachments")
def get_message(message_id: MessageId, request: Request, p: Principal = Depends(principal),
                session: Session = Depends(db)) -> dict[str, object]:
    row = visible(session, p, message_id)

    def url(index: int) -> str:
        return str(request.url_for("get_attachment", message_id=row.id, index=index))

    content = message_content.content_of(row.raw, images=False, cid_url=url)
    return {**json_views.inbound_json(session, row), "text": row.reply_text or content.reply_text,
            "body_text": content.body_text, "body_html": content.body_html,
            "has_remote_images": content.has_remote_images,
            "attachments": [{"name": a.name, "content_type": a.content_type, "size": a.size, "url": url(a.index)}
                            for a in content.attachments]}


_TOKEN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")


@router.get("/messages/{message_id}/attachments/{index}", name="get_attachment", responses={
    **ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "the attachment's bytes"}},
    response_class=Response, summary="One attachment's bytes (always as a download)")
def get_attachment(message_id: MessageId, index: Annotated[int, Path(ge=0, le=10_000)],
                   p: Principal = Depends(principal), session: Session = Depends(db)) -> Response:
    row = visible(session, p, message_id)
    found, data = message_content.attachment(row.raw, index)
    kind = found.content_type
    if not _TOKEN.match(kind) or message_content.is_html_like(kind):
        kind = "application/octet-stream"  # nothing a browser would render as a page of ours
    return Response(data, media_type=kind, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.name, safe='')}",
        "X-Content-Type-Options": "nosniff"})


def _open(session: Session, p: Principal, message_id: int) -> InboundMessage:
    row = visible(session, p, message_id)
    if row.route != "unassigned" or row.triage != "open":
        state = row.triage if row.route == "unassigned" or row.triage == "assigned" else f"routed to {row.route}"
        raise Conflict(f"message {message_id} is not an open unassigned message ({state})")
    return row


@router.post("/messages/{message_id}/assign", response_model=Inbound, responses={**ERRORS, **CONFLICT},
             summary="Give an open Unassigned message to an employee; the candidate's next reply threads to them")
def assign(message_id: MessageId, body: AssignIn, p: Principal = Depends(principal),
           session: Session = Depends(db)) -> dict[str, object]:
    _open(session, p, message_id)
    try:
        employee = employees.get_employee(session, body.employee_number)
    except NotFound as err:
        raise BadField(("body", "employee_number"), str(err)) from None
    if not employee.active:
        raise BadField(("body", "employee_number"), f"employee {employee.number} is inactive")
    row = triage.assign(session, message_id, employee.number)
    session.commit()
    return json_views.inbound_json(session, row)


@router.post("/messages/{message_id}/dismiss", response_model=Inbound,
             responses={**ERRORS, **CONFLICT}, summary="Dismiss an open Unassigned message (kept, restorable)")
def dismiss(message_id: MessageId, p: Principal = Depends(principal),
            session: Session = Depends(db)) -> dict[str, object]:
    _open(session, p, message_id)
    row = triage.dismiss(session, message_id)
    session.commit()
    return json_views.inbound_json(session, row)
