"""/send/bulk: a CSV upload sent as one message per row (bridge.outbound.bulk), as `send --csv` does.

Upload, then a preview of the first messages as they will go out with the row count and the time the
alias delay makes it take; nothing is queued until "Queue" is pressed, and then every row or none. The
progress page counts the batch's messages by status until none waits.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func
from sqlmodel import Session, select

from bridge import portal
from bridge.accounts import aliases
from bridge.errors import InputError, NotFound
from bridge.outbound import bulk, queue
from bridge.web import auth
from bridge.web.deps import db
from bridge.web.templating import flash, render
from models import UNSENT_STATUSES, Employee, OutboundMessage

router = APIRouter()
PREVIEW_ROWS = 3


def _page(request: Request, session: Session, me: Employee, values: dict[str, str], *, error: str | None = None,
          preview: list[dict[str, str]] | None = None, count: int = 0, estimate: str = "",
          status_code: int = 200) -> Response:
    return render(request, session, "bulk_send.html", {
        "title": "Bulk send", "aliases": aliases.aliases_of(session, me), "values": values, "error": error,
        "preview": preview, "count": count, "estimate": estimate}, status_code=status_code)


@router.get("/send/bulk")
def bulk_page(request: Request, session: Session = Depends(db),
              me: Employee = Depends(auth.current_employee)) -> Response:
    return _page(request, session, me, {})


@router.post("/send/bulk", dependencies=[Depends(auth.check_csrf)])
async def bulk_post(request: Request, subject: str = Form(""), body: str = Form(""), alias: str = Form(""),
                    csv_text: str = Form(""), action: str = Form("preview"), upload: UploadFile | None = None,
                    session: Session = Depends(db), me: Employee = Depends(auth.current_employee)) -> Response:
    """Preview (an upload, or the CSV carried over from the last preview), or queue every row."""
    if upload is not None and upload.filename:
        csv_text = (await upload.read()).decode("utf-8-sig", errors="replace")
    values = {"subject": subject, "body": body, "alias": alias, "csv_text": csv_text}
    base = queue.Request(employee_number=me.number, to="", subject=subject, text=body.replace("\r\n", "\n"),
                         alias=alias or None)
    try:
        if not subject.strip() or not body.strip():
            raise InputError("a subject and a body are needed")
        rows = bulk.read_rows(csv_text, "uploaded")
        if action == "send":
            queued = bulk.queue_rows(session, base, rows, "the CSV")
            session.commit()
            flash(request, f"Queued {len(queued)} messages")
            return RedirectResponse(f"/send/bulk/progress?first={queued[0].id}&last={queued[-1].id}",
                                    status_code=303)
        composed = bulk.queue_rows(session, base, rows, "the CSV")  # every row checked, bad lines named
        portal_url = portal.load(session).portal_url
        preview = [{"to": m.to_addr, "from": m.from_addr, "subject": m.subject,
                    "body": queue.fill_placeholders(base.text or "", row, portal_url)}
                   for m, row in zip(composed[:PREVIEW_ROWS], rows, strict=False)]
        session.rollback()  # the preview composed every message to check it; none is kept
        estimate = bulk.estimate(bulk.delay_ms(session, base), len(rows))
        return _page(request, session, me, values, preview=preview, count=len(rows), estimate=estimate)
    except (InputError, NotFound) as err:
        session.rollback()
        return _page(request, session, me, values, error=str(err), status_code=422)


@router.get("/send/bulk/progress")
def bulk_progress(request: Request, first: int, last: int, session: Session = Depends(db),
                  me: Employee = Depends(auth.current_employee)) -> Response:
    """The batch's messages (ids first..last queued by this employee) counted by status."""
    counts = dict(session.exec(select(OutboundMessage.status, func.count()).where(
        OutboundMessage.id >= first, OutboundMessage.id <= last, OutboundMessage.employee_id == me.id,
        OutboundMessage.purpose == "message").group_by(OutboundMessage.status)).all())
    waiting = sum(counts.get(s, 0) for s in UNSENT_STATUSES)
    return render(request, session, "bulk_progress.html", {
        "title": "Bulk send progress", "counts": sorted(counts.items()), "total": sum(counts.values()),
        "waiting": waiting, "first": first, "last": last})
