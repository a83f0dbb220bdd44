"""`none`: the recruiter reads replies in the pages and the API only; nothing is sent or appended."""

from __future__ import annotations

from sqlmodel import Session

from bridge import portal
from models import Employee, InboundMessage


def plan(session: Session, row: InboundMessage, employee: Employee, settings: portal.PortalSettings | None) -> None:
    """Nothing to plan: the row keeps hand-off state `none`."""
