"""My conversations: each employee's candidates, and each conversation as one thread of what was
sent and received, in order. Recruiters see their own; admins everyone's, filtered by employee."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func
from sqlmodel import Session, select

from bridge.errors import NotFound
from bridge.inbound.message_content import content_of, reply_text
from bridge.web import auth
from bridge.web.deps import db
from bridge.web.templating import render
from models import Candidate, Conversation, Employee, InboundMessage, OutboundMessage

router = APIRouter()
PAGE = 100
THREAD_PURPOSES = ("message", "acknowledgement")  # forwards are copies to the recruiter, not the thread


@dataclass(frozen=True)
class Entry:
    """One message of a thread, sent or received."""

    at: dt.datetime
    direction: str  # sent | received
    subject: str
    text: str
    status: str | None  # a sent message's Mail Log status
    link: str


@router.get("/conversations")
def conversations(request: Request, employee: int | None = None, page: int = 1, session: Session = Depends(db),
                  me: Employee = Depends(auth.current_employee)) -> Response:
    shown = me
    if me.admin and employee is not None:
        shown = session.exec(select(Employee).where(Employee.number == employee)).first()
        if shown is None:
            raise NotFound(f"no employee number {employee}")
    everyone = me.admin and employee is None
    sent = (select(OutboundMessage.conversation_id, func.count().label("n"), func.max(OutboundMessage.created_at)
                   .label("last")).where(OutboundMessage.purpose.in_(THREAD_PURPOSES))
            .group_by(OutboundMessage.conversation_id).subquery())
    received = (select(InboundMessage.conversation_id, func.count().label("n"),
                       func.max(InboundMessage.received_at).label("last"))
                .group_by(InboundMessage.conversation_id).subquery())
    query = (select(Conversation, Candidate, Employee, sent.c.n, sent.c.last, received.c.n, received.c.last)
             .join(Candidate, Candidate.id == Conversation.candidate_id)
             .join(Employee, Employee.id == Conversation.employee_id)
             .outerjoin(sent, sent.c.conversation_id == Conversation.id)
             .outerjoin(received, received.c.conversation_id == Conversation.id))
    if not everyone:
        query = query.where(Conversation.employee_id == shown.id)
    page = max(1, page)
    rows = session.exec(query.order_by(Conversation.id.desc()).offset((page - 1) * PAGE).limit(PAGE + 1)).all()
    items = [{"conversation": c, "candidate": cand, "employee": emp, "sent": sn or 0, "received": rn or 0,
              "last": max((t for t in (sl, rl) if t is not None), default=c.created_at)}
             for c, cand, emp, sn, sl, rn, rl in rows[:PAGE]]
    items.sort(key=lambda item: item["last"], reverse=True)
    employees = list(session.exec(select(Employee).order_by(Employee.number))) if me.admin else []
    title = "All conversations" if everyone else (
        "My conversations" if shown.id == me.id else f"Conversations of {shown.name} ({shown.number})")
    return render(request, session, "conversations.html", {
        "title": title, "items": items, "employees": employees, "employee": employee, "page": page,
        "more": len(rows) > PAGE})


def _thread(session: Session, conversation_id: int) -> list[Entry]:

    entries = [Entry(m.created_at, "sent", m.subject, content_of(m.raw).body_text, m.status, f"/log#log-{m.id}")
               for m in session.exec(select(OutboundMessage).where(
                   OutboundMessage.conversation_id == conversation_id,
                   OutboundMessage.purpose.in_(THREAD_PURPOSES)))]
    entries += [Entry(m.received_at, "received", m.subject or "", reply_text(m.reply_text, m.raw),
                      None, f"/messages/{m.id}")
                for m in session.exec(select(InboundMessage).where(InboundMessage.conversation_id == conversation_id))]
    return sorted(entries, key=lambda e: e.at)


@router.get("/conversations/{conversation_id}")
def conversation(request: Request, conversation_id: int, session: Session = Depends(db),
                 me: Employee = Depends(auth.current_employee)) -> Response:
    found = session.get(Conversation, conversation_id)
    if found is None:
        raise NotFound(f"no conversation {conversation_id}")
    if not auth.may_see_employee_mail(me, found.employee_id):
        raise auth.Forbidden("this conversation belongs to another employee")
    candidate = session.get(Candidate, found.candidate_id)
    owner = session.get(Employee, found.employee_id)
    return render(request, session, "conversation.html", {
        "title": f"Conversation with {candidate.name or candidate.email}", "candidate": candidate, "owner": owner,
        "entries": _thread(session, conversation_id)})
