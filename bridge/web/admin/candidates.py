"""/admin/candidates: erase or export one candidate on request. "Find" shows what an erasure would remove
(a dry run: nothing changes); "Erase" asks for a confirmation first and can also delete the copies in IMAP
folders; "Export" downloads the zip of their mail and records. The same code as `candidate erase|export`."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from bridge.errors import FieldError, InputError
from bridge.privacy import erasure
from bridge.privacy.imap_copies import ImapCopiesFailed
from bridge.privacy.selection import normalized
from bridge.web import auth
from bridge.web.admin import forms
from bridge.web.deps import db
from bridge.web.export_download import zip_download
from bridge.web.templating import flash, render

router = forms.admin_router()
LABELS = {"inbound": "Received messages", "bounces": "Bounces of messages to them", "mail_log": "Mail Log entries",
          "forwards": "Forwards to recruiters", "cancelled": "Messages still to go out (cancelled)",
          "delivery_attempts": "Delivery attempts", "conversations": "Conversations", "candidates": "Candidate records",
          "webhook_deliveries": "Webhook deliveries naming them",
          "alerts_redacted": "Error report conditions naming them"}


def _page(request: Request, session: Session, values: dict[str, str], errors: dict[str, str] | None = None,
          found: erasure.Erasure | None = None, status_code: int = 200) -> Response:
    rows = [(LABELS.get(kind, kind), count) for kind, count in found.counts.items()] if found else []
    return render(request, session, "admin/candidates.html",
                  {"title": "Candidates", "values": values, "errors": errors or {}, "found": found, "rows": rows},
                  status_code=status_code)


def _address(values: dict[str, str]) -> str:
    try:
        return normalized(forms.text(values, "address"))
    except InputError as err:
        raise FieldError("address", str(err)) from None


@router.get("/candidates")
def candidates_page(request: Request, session: Session = Depends(db)) -> Response:
    return _page(request, session, {})


@router.post("/candidates/find", dependencies=[Depends(auth.check_csrf)])
def candidates_find(request: Request, values: dict[str, str] = Depends(forms.form_values),
                    session: Session = Depends(db)) -> Response:
    """What an erasure would remove: the dry run's counts, then the confirmation."""
    try:
        address = _address(values)
    except InputError as err:
        return _page(request, session, forms.kept(values), forms.refused(session, err), status_code=422)
    found = erasure.erase(session, address, dry_run=True)
    return _page(request, session, {"address": address}, found=found)


@router.post("/candidates/erase", dependencies=[Depends(auth.check_csrf)])
def candidates_erase(request: Request, values: dict[str, str] = Depends(forms.form_values),
                     session: Session = Depends(db)) -> Response:
    try:
        address = _address(values)
    except InputError as err:
        return _page(request, session, forms.kept(values), forms.refused(session, err), status_code=422)
    try:
        done = erasure.erase(session, address, from_imap=forms.checked(values, "from_imap"))
    except ImapCopiesFailed as err:
        session.rollback()
        return _page(request, session, {"address": address}, {forms.FORM: f"Not erased: {err}"},
                     found=erasure.erase(session, address, dry_run=True), status_code=502)
    copies = sum(done.imap.values())
    flash(request, f"Erased {sum(done.counts.values())} records" + (f" and {copies} IMAP copies" if copies else "")
          + f" (receipt {done.receipt_id})" + ("; it had been erased before" if done.erased_before else ""))
    return RedirectResponse("/admin/candidates", status_code=303)


@router.post("/candidates/export", dependencies=[Depends(auth.check_csrf)])
def candidates_export(request: Request, values: dict[str, str] = Depends(forms.form_values),
                      session: Session = Depends(db)) -> Response:
    try:
        address = _address(values)
    except InputError as err:
        return _page(request, session, forms.kept(values), forms.refused(session, err), status_code=422)
    return zip_download(session, address)
