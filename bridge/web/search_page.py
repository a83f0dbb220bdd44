"""The search page: /search?q=... from the box in every page's navigation, the signed-in employee's
messages (a recruiter: their own and the Unassigned ones; an admin: all) best first, 50 a page, the
matching words marked (bridge.inbound.search_marks: escaped text, our own <mark> tags only)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlmodel import Session, select

from bridge.errors import FieldError
from bridge.inbound import search
from bridge.inbound.search_marks import highlight, snippet
from bridge.web import auth
from bridge.web.deps import db
from bridge.web.templating import render
from models import Employee, InboundMessage

router = APIRouter()
PAGE = 50
MAX_PAGE = search.RANKED // PAGE


@dataclass(frozen=True)
class Result:
    id: int
    sender: Markup
    subject: Markup
    snippet: Markup
    received_at: object
    where: str  # the employee's name and number, or the route


def _page_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise FieldError("page", f"the page must be a number from 1 to {MAX_PAGE}")
    return int(value)


def _results(session: Session, ids: list[int], terms: list[str]) -> list[Result]:
    m = InboundMessage
    rows = {r.id: r for r in session.exec(select(m.id, m.from_addr, m.from_name, m.subject, m.reply_text,
                                                 m.received_at, m.route, m.employee_id).where(m.id.in_(ids))).all()}
    names = {e.id: f"{e.name} ({e.number})" for e in session.exec(select(Employee).where(
        Employee.id.in_({r.employee_id for r in rows.values() if r.employee_id is not None}))).all()}
    found = []
    for i in ids:
        r = rows[i]
        sender = f"{r.from_name} <{r.from_addr}>" if r.from_name else (r.from_addr or "(no sender address)")
        found.append(Result(r.id, highlight(sender, terms), highlight(r.subject or "(no subject)", terms),
                            snippet(r.reply_text, terms), r.received_at,
                            names.get(r.employee_id, "Unassigned" if r.route == "unassigned" else r.route or "")))
    return found


@router.get("/search")
def search_results(request: Request, q: str = "", page: str = "1", session: Session = Depends(db),
                   me: Employee = Depends(auth.current_employee)) -> Response:
    context: dict[str, object] = {"title": "Search", "search_query": q, "results": [], "page_number": 1,
                                  "more": False, "capped": False, "error": None, "ranked": search.RANKED}
    try:
        number = _page_number(page)
        terms = search.words(q)
        found = search.search(session, q, search.Viewer(me.admin, me.id), limit=PAGE, offset=(number - 1) * PAGE)
    except FieldError as err:
        context["error"] = str(err)
        return render(request, session, "search.html", context, status_code=400)
    context.update(results=_results(session, found.ids, terms), page_number=number, more=found.more,
                   capped=found.capped)
    return render(request, session, "search.html", context)
