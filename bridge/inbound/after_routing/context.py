"""What every step after routing is given: the claimed row and why it went where it went. A leaf, so the
steps and the pipeline that runs them share the type without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from bridge import portal
from bridge.inbound.parse import Parsed
from models import InboundMessage
from routing.classify import Classification
from routing.router import Decision


@dataclass(frozen=True)
class Routed:
    """A message just routed, inside the transaction that claimed it: a step's writes commit with it."""

    session: Session
    row: InboundMessage
    parsed: Parsed
    classification: Classification
    decision: Decision
    settings: portal.PortalSettings
    probe: bool  # a `test loop` probe we signed: routed, never handed off, answered or announced
