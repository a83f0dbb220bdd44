"""The audit log: who did what, written in the transaction of the action itself (nothing recorded for an
action that was rolled back, nothing done without its record).

Who acts is set once where a request or command starts (`act_as` on its database session: the signed-in
employee, the API token, the command's user) and read here, so the code that changes things records the
action without knowing where it came from. Entries never hold content: a message is named by its id, a
candidate by `candidate_ref`, a keyed hash of the address (the audit log outlives an erasure).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac

from sqlmodel import Session, select

from bridge import crypto
from models import AuditEvent, aware

ACTOR = "actor"  # the key in Session.info
ACTIONS = ("sign_in", "sign_in_failed", "sign_out", "assign", "dismiss", "restore", "reroute", "confirm_sender",
           "view_raw", "send_reply", "erase", "export", "settings", "account", "token", "webhook", "retention")


def act_as(session: Session, actor: str) -> None:
    """Name who acts through this session: every `record` in it names them."""
    session.info[ACTOR] = actor[:300]


def command_actor() -> str:
    """A command names the operating-system user who ran it."""
    try:
        return f"command ({getpass.getuser()})"
    except (KeyError, OSError):
        return "command"


def record(session: Session, action: str, target: str | None = None, detail: str | None = None) -> None:
    """One entry for an action taken through this session (its actor, else "system"), in its transaction."""
    session.add(AuditEvent(actor=session.info.get(ACTOR, "system"), action=action,
                           target=target[:300] if target else None, detail=detail))


def candidate_ref(address: str) -> str:
    """A candidate's address as the audit log and the erasure receipts keep it: an HMAC under this
    installation's key, the same for the same address, which nobody can turn back into the address."""
    digest = hmac.new(crypto.signing_key("candidate-ref"), address.strip().lower().encode(), hashlib.sha256)
    return digest.hexdigest()


def entries(session: Session, *, action: str | None = None, before: int | None = None, since: dt.datetime | None = None,
            limit: int = 200) -> list[AuditEvent]:
    """Newest first; `before` an entry id (paging), `since` a time."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEvent.action == action)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(session.exec(query))


def entry_json(e: AuditEvent) -> dict[str, object]:
    return {"id": e.id, "at": aware(e.at).isoformat(), "actor": e.actor, "action": e.action, "target": e.target,
            "detail": e.detail}
