"""/admin/audit: the audit log for admins (what `replybridge audit` prints), newest first, by action, paged
by entry id so an old page costs what the first does."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session

from bridge import audit
from bridge.web.admin import forms
from bridge.web.deps import db
from bridge.web.templating import render

router = forms.admin_router()
PAGE = 100


@router.get("/audit")
def audit_page(request: Request, action: str = "", before: int | None = None,
               session: Session = Depends(db)) -> Response:
    if action and action not in audit.ACTIONS:
        raise HTTPException(404, f"There is no action {action[:64]!r} in the audit log.")
    if before is not None and not 0 < before < 2**63:
        raise HTTPException(404, "There is no such page of the audit log.")
    rows = audit.entries(session, action=action or None, before=before, limit=PAGE + 1)
    return render(request, session, "admin/audit.html", {
        "title": "Audit log", "rows": rows[:PAGE], "actions": audit.ACTIONS, "action": action,
        "older": rows[PAGE - 1].id if len(rows) > PAGE else None, "first_page": before is not None})
