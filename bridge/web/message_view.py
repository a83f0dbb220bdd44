"""One received message: read it safely, triage it while it is unassigned, and answer the candidate.

The candidate's HTML is shown only as nh3 cleaned it (bridge.inbound.message_content), under the strict CSP;
remote images stay blocked until the reader asks for them, and only then does this page allow them.
Attachments and the raw source are downloads that no browser renders as a page of this site.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from bridge import audit
from bridge.accounts.aliases import aliases_of
from bridge.errors import InputError, NotFound
from bridge.inbound import triage
from bridge.inbound.message_content import attachment, content_of, headers_of, is_html_like, reply_references
from bridge.input_checks import one_line
from bridge.outbound import queue
from bridge.web import auth
from bridge.web.deps import db
from bridge.web.security_headers import CSP_IMAGES
from bridge.web.templating import flash, render
from models import Conversation, Employee, InboundMessage

router = APIRouter()

# What a download may do when opened on its own: nothing (no script, no loads, a unique origin).
DOWNLOAD_CSP = "default-src 'none'; sandbox"
_RE = re.compile(r"^\s*re\s*:", re.IGNORECASE)


def _visible(session: Session, me: Employee, message_id: int) -> InboundMessage:
    """The message, if it exists (else 404) and the signed-in employee may see it (else 403)."""
    row = triage.get_inbound(session, message_id)
    if not auth.may_see_message(me, row):
        raise auth.Forbidden("this message belongs to another recruiter")
    return row


def reply_sender(session: Session, me: Employee, row: InboundMessage) -> Employee:
    """Who a reply goes out as: the signed-in employee; an admin answers another's message as that employee."""
    if me.admin and row.employee_id is not None and row.employee_id != me.id:
        owner = session.get(Employee, row.employee_id)
        if owner is not None:
            return owner
    return me


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _page(request: Request, session: Session, me: Employee, row: InboundMessage, *, images: bool = False,
          errors: dict[str, str] | None = None, reply: str = "", chosen_alias: str = "",
          status_code: int = 200) -> Response:
    content = content_of(row.raw, images=images, cid_url=lambda index: f"/messages/{row.id}/attachments/{index}")
    headers = headers_of(row.raw)
    owner = session.get(Employee, row.employee_id) if row.employee_id else None
    is_open = row.route == "unassigned" and row.triage == "open"
    employees = (session.exec(select(Employee).where(Employee.active).order_by(Employee.number)).all()
                 if is_open else [])
    attachments = [{"url": f"/messages/{row.id}/attachments/{a.index}", "name": a.name,
                    "content_type": a.content_type, "size": _size(a.size)} for a in content.attachments]
    response = render(request, session, "message.html", {
        "title": row.subject or "(no subject)", "row": row, "content": content, "headers": headers,
        "owner": owner, "is_open": is_open, "employees": employees, "attachments": attachments,
        "images": images, "errors": errors or {}, "reply": reply, "sender": reply_sender(session, me, row),
        "aliases": aliases_of(session, reply_sender(session, me, row)), "chosen_alias": chosen_alias,
    }, status_code=status_code)
    if images:
        response.headers["Content-Security-Policy"] = CSP_IMAGES
    return response


@router.get("/messages/{message_id}")
def message_page(request: Request, message_id: int, images: bool = False, session: Session = Depends(db),
                 me: Employee = Depends(auth.current_employee)) -> Response:
    return _page(request, session, me, _visible(session, me, message_id), images=images)


def content_disposition(kind: str, name: str) -> str:
    """RFC 6266: an ASCII fallback `filename` and the exact name as UTF-8 `filename*`."""
    fallback = re.sub(r'[^\x20-\x7e]|["\\%]', "_", name).strip() or "download"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/messages/{message_id}/attachments/{index}")
def download(message_id: int, index: int, session: Session = Depends(db),
             me: Employee = Depends(auth.current_employee)) -> Response:
    row = _visible(session, me, message_id)
    found, data = attachment(row.raw, index)
    kind = "application/octet-stream" if is_html_like(found.content_type) else found.content_type
    return Response(data, media_type=kind, headers={
        "Content-Disposition": content_disposition("attachment", found.name),
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": DOWNLOAD_CSP})


@router.get("/messages/{message_id}/raw")
def raw_source(message_id: int, session: Session = Depends(db),
               _admin: Employee = Depends(auth.require_admin)) -> Response:
    row = triage.get_inbound(session, message_id)
    audit.record(session, "view_raw", f"message {message_id}")
    return Response(row.raw, media_type="text/plain; charset=utf-8", headers={
        "Content-Disposition": content_disposition("inline", f"message-{row.id}.eml"),
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": DOWNLOAD_CSP})


@router.post("/messages/{message_id}/assign", dependencies=[Depends(auth.check_csrf)])
def assign(request: Request, message_id: int, employee_number: str = Form(""), session: Session = Depends(db),
           me: Employee = Depends(auth.current_employee)) -> Response:
    row = _visible(session, me, message_id)
    if not employee_number.strip().isdigit():
        return _page(request, session, me, row, errors={"employee": "Choose an employee."}, status_code=422)
    try:
        triage.assign(session, message_id, int(employee_number))
    except (InputError, NotFound) as err:  # the message itself exists: a wrong choice is bad input
        session.rollback()
        still_open = row.route == "unassigned" and row.triage == "open"  # else someone triaged it meanwhile
        return _page(request, session, me, row, errors={"employee" if still_open else "triage": str(err)},
                     status_code=422)
    employee = session.get(Employee, row.employee_id)
    session.commit()
    flash(request, f"Message {message_id} assigned to {employee.number} {employee.name}")
    return RedirectResponse("/unassigned", status_code=303)


@router.post("/messages/{message_id}/dismiss", dependencies=[Depends(auth.check_csrf)])
def dismiss(request: Request, message_id: int, session: Session = Depends(db),
            me: Employee = Depends(auth.current_employee)) -> Response:
    row = _visible(session, me, message_id)
    try:
        triage.dismiss(session, message_id)
    except InputError as err:
        session.rollback()
        return _page(request, session, me, row, errors={"triage": str(err)}, status_code=422)
    session.commit()
    flash(request, f"Message {message_id} dismissed (kept: it can be restored)")
    return RedirectResponse("/unassigned", status_code=303)


@router.post("/messages/{message_id}/restore", dependencies=[Depends(auth.check_csrf)])
def restore(request: Request, message_id: int, session: Session = Depends(db),
            me: Employee = Depends(auth.current_employee)) -> Response:
    row = _visible(session, me, message_id)
    try:
        triage.restore(session, message_id)
    except InputError as err:
        session.rollback()
        return _page(request, session, me, row, errors={"triage": str(err)}, status_code=422)
    session.commit()
    flash(request, f"Message {message_id} is back in Unassigned messages")
    return RedirectResponse(f"/messages/{message_id}", status_code=303)


@router.post("/messages/{message_id}/reply", dependencies=[Depends(auth.check_csrf)])
def send_reply(request: Request, message_id: int, reply: str = Form(""), alias: str = Form(""),
               session: Session = Depends(db), me: Employee = Depends(auth.current_employee)) -> Response:
    row = _visible(session, me, message_id)
    text = reply.replace("\r\n", "\n")
    if not row.from_addr:
        error = "This message has no sender address to reply to; nothing was queued."
    elif not text.strip():
        error = "Write a reply first; nothing was queued."
    else:
        headers = headers_of(row.raw)
        subject = one_line(row.subject) or ""
        req = queue.Request(
            employee_number=reply_sender(session, me, row).number, to=row.from_addr, to_name=one_line(row.from_name),
            subject=subject if _RE.match(subject) else f"Re: {subject}".strip(), text=text, alias=alias or None,
            in_reply_to=headers.message_id or row.message_id, references=reply_references(headers))
        try:
            queued = queue.queue(session, req)
        except (InputError, NotFound) as err:
            session.rollback()
            error = str(err)
        else:
            if row.conversation_id is None and row.route == "employee" and queued.conversation_id is not None:
                # answering it confirms the sender as the candidate: the message joins the reply's thread
                conversation = session.get(Conversation, queued.conversation_id)
                row.conversation_id, row.candidate_id = conversation.id, conversation.candidate_id
                session.add(row)
            audit.record(session, "send_reply", f"message {message_id}", f"Mail Log #{queued.id}")
            session.commit()
            note = f". It cannot be sent: {queued.last_reply}" if queued.status == "not_sent" else ""
            flash(request, f"Reply queued (Mail Log #{queued.id}){note}")
            return RedirectResponse(f"/messages/{message_id}", status_code=303)
    return _page(request, session, me, row, errors={"reply": error}, reply=reply, chosen_alias=alias,
                 status_code=422)
