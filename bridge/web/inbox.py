"""(being built)"""

from fastapi import APIRouter, Depends, Request
from sqlmodel import Session

from bridge.web import auth
from bridge.web.deps import db
from bridge.web.templating import render

router = APIRouter()


@router.get("/unassigned")
def unassigned(request: Request, session: Session = Depends(db), me=Depends(auth.current_employee)):  # noqa: ANN001, ANN201
    return render(request, session, "error.html", {"title": "Unassigned messages", "detail": "soon"})
