"""The Unassigned messages page: open messages newest first with suggested employees, bulk assign and
dismiss, and the dismissed ones (restorable from their message page).

Paging is by keyset on (received_at, id), the order of ix_inbound_message_inbox, so a deep page costs
what the first does. The page loads only the columns it shows (never the raw message) and the
suggestions for all its rows in a constant number of queries (bridge/inbound/suggestion_lookups.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Row, Select, tuple_
from sqlmodel import Session, select

from bridge.errors import BridgeError
from bridge.inbound import suggestion_lookups, triage
from bridge.web import auth
from bridge.web.api import paging
from bridge.web.api.errors import BadField
from bridge.web.deps import db
from bridge.web.templating import flash, render
from models import Employee, InboundMessage

router = APIRouter()
PAGE = 50
VIEWS = {"open": "open", "dismissed": "dismissed"}  # ?view= -> triage state listed
SHOWN = (InboundMessage.id, InboundMessage.from_addr, InboundMessage.from_name, InboundMessage.subject,
         InboundMessage.received_at, InboundMessage.reason, InboundMessage.kind, InboundMessage.flagged,
         InboundMessage.triage)


@dataclass(frozen=True)
class Cursor:
    """A place in the newest-first order: the row's received time and id (ties on time go by id). Its
    text is the API's message cursor (bridge.web.api.paging): one format for both lists."""

    received_at: dt.datetime
    id: int

    def encode(self) -> str:
        return paging.after_message(self.received_at, self.id)

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        if not text:
            return None
        try:
            return cls(*paging.message_position(text))
        except BadField:
            raise HTTPException(400, "That page link is not valid: start again from the first page.") from None

    @classmethod
    def of(cls, row: Row) -> Cursor:
        return cls(row.received_at, row.id)


@dataclass
class Page:
    rows: list[Row]  # the SHOWN columns
    older: str | None  # cursor for the "Older" link
    newer: str | None  # cursor for the "Newer" link (None on the first page)


def _query(state: str) -> Select:
    """Only the shown columns, as plain rows: no raw message, no ORM objects to build."""
    return select(*SHOWN).where(InboundMessage.route == "unassigned", InboundMessage.triage == state)


def _key() -> object:
    return tuple_(InboundMessage.received_at, InboundMessage.id)


def list_page(session: Session, state: str, before: Cursor | None = None, after: Cursor | None = None) -> Page:
    """One page newest first: below `before`, or the page just above `after` (the "Newer" link)."""
    if after is not None:
        rows = list(session.execute(_query(state).where(_key() > tuple_(after.received_at, after.id))
                                    .order_by(InboundMessage.received_at, InboundMessage.id).limit(PAGE + 1)))
        if len(rows) > PAGE:  # still not the first page
            rows = rows[:PAGE][::-1]
            return Page(rows, Cursor.of(rows[-1]).encode(), Cursor.of(rows[0]).encode())
        before = None  # reached the top: show a full first page
    query = _query(state)
    if before is not None:
        query = query.where(_key() < tuple_(before.received_at, before.id))
    rows = list(session.execute(query.order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
                                .limit(PAGE + 1)))
    older = Cursor.of(rows[PAGE - 1]).encode() if len(rows) > PAGE else None
    rows = rows[:PAGE]
    newer = Cursor.of(rows[0]).encode() if before is not None and rows else None
    return Page(rows, older, newer)


def _employees(session: Session) -> list[Employee]:
    return list(session.exec(select(Employee).where(Employee.active).order_by(Employee.name, Employee.number)))


def _render(request: Request, session: Session, view: str, before: str | None, after: str | None, *,
            error: str | None = None, checked: frozenset[int] = frozenset(), chosen: str = "",
            status_code: int = 200) -> Response:
    state = VIEWS.get(view or "open")
    if state is None:
        raise HTTPException(404, f"There is no view {view!r} of the Unassigned messages.")
    page = list_page(session, state, Cursor.decode(before), Cursor.decode(after))
    suggested = suggestion_lookups.suggest_for(session, page.rows) if state == "open" else {}
    return render(request, session, "unassigned.html", {
        "title": "Unassigned messages" if state == "open" else "Dismissed messages",
        "view": state, "page": page, "suggested": suggested, "employees": _employees(session),
        "first_page": page.newer is not None, "error": error, "checked": checked,
        "chosen": chosen, "before": before or "",
    }, status_code=status_code)


@router.get("/unassigned")
def unassigned(request: Request, view: str = "open", before: str | None = None, after: str | None = None,
               session: Session = Depends(db), me: Employee = Depends(auth.current_employee)) -> Response:
    return _render(request, session, view, before, after)


def _ids(values: list[str]) -> list[int]:
    if not all(v.isdigit() and len(v) <= 18 for v in values):
        raise BridgeError("The selection is not valid: reload the page and try again.")
    ids = list(dict.fromkeys(int(v) for v in values))
    if not ids:
        raise BridgeError("Select at least one message.")
    return ids


def _employee(session: Session, value: str) -> Employee:
    value = value.strip()
    if not value.isdigit() or len(value) > 18:
        raise BridgeError("Choose the employee to assign the messages to.")
    employee = session.exec(select(Employee).where(Employee.number == int(value))).first()
    if employee is None or not employee.active:
        raise BridgeError(f"There is no active employee {value}.")
    return employee


def _plural(n: int) -> str:
    return f"{n} message" if n == 1 else f"{n} messages"


@router.post("/unassigned/bulk", dependencies=[Depends(auth.check_csrf)])
def bulk(request: Request, ids: list[str] = Form([]), action: str = Form(""), employee: str = Form(""),
         quick: str = Form(""), before: str = Form(""), session: Session = Depends(db),
         me: Employee = Depends(auth.current_employee)) -> Response:
    """Assign or dismiss the ticked messages in one transaction: any refusal changes nothing."""
    Cursor.decode(before)  # the page to return to: a broken one is refused before anything changes
    try:
        if quick:  # the row's "Assign to suggested": "ID:NUMBER"
            message_id, _, number = quick.partition(":")
            ids, action, employee = [message_id], "assign", number
        chosen = _ids(ids)
        if action == "assign":
            target = _employee(session, employee)
            for inbound_id in chosen:
                triage.assign(session, inbound_id, target.number)
            done = f"Assigned {_plural(len(chosen))} to {target.name} ({target.number})."
        elif action == "dismiss":
            for inbound_id in chosen:
                triage.dismiss(session, inbound_id)
            done = f"Dismissed {_plural(len(chosen))}. Dismissed messages can be restored from their page."
        else:
            raise BridgeError("Choose Assign selected or Dismiss selected.")
        session.commit()
    except BridgeError as err:
        session.rollback()
        checked = frozenset(int(i) for i in ids if i.isdigit() and len(i) <= 18) if not quick else frozenset()
        return _render(request, session, "open", before or None, None, error=str(err), checked=checked,
                       chosen=employee if not quick else "", status_code=422)
    flash(request, done)
    return RedirectResponse("/unassigned" + (f"?before={before}" if before else ""), status_code=303)
