"""Exporting one candidate's mail for an access request (GDPR articles 15 and 20): `candidate export` and the
API's and admin page's download.

One zip: `messages.mbox` (Python's mailbox.mbox) with every message from them and every message to them, the
exact bytes as stored, oldest first; `candidate.json` with their candidate rows, their conversations with
the employees' numbers, their Mail Log entries and their received messages as the CLI's JSON objects, and
the time of the export. The rows are the ones an erasure would remove (bridge.privacy.selection), less the
machinery: forwards to recruiters (copies of their own messages) and bounces. The export is audited.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import mailbox
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlmodel import Session, select

from bridge import audit, json_views
from bridge.privacy.selection import chunks, normalized, select_person
from models import Candidate, Conversation, Employee, InboundMessage, OutboundMessage, aware, utcnow

PROGRESS_EVERY = 500  # messages between progress reports


@dataclass(frozen=True)
class Exported:
    inbound: int
    outbound: int
    candidates: int
    conversations: int


def export(session: Session, address: str, target: IO[bytes],
           progress: Callable[[int, int], None] | None = None) -> Exported:
    """Write the person's zip to `target` (an open binary file); records the export in the audit log."""
    address = normalized(address)
    found = select_person(session, address)
    inbound = _rows(session, InboundMessage, found.inbound_ids)
    outbound = _rows(session, OutboundMessage, found.outbound_ids)
    with tempfile.TemporaryDirectory(prefix="rb-export-") as scratch:
        box_path = Path(scratch) / "messages.mbox"
        _write_mbox(box_path, inbound, outbound, progress)
        document = _document(session, found.addresses, found.candidate_ids, found.conversation_ids, inbound,
                             outbound)
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(box_path, "messages.mbox")
            archive.writestr("candidate.json", json.dumps(document, ensure_ascii=False, indent=2, default=str))
    result = Exported(len(inbound), len(outbound), len(found.candidate_ids), len(found.conversation_ids))
    audit.record(session, "export", f"candidate {audit.candidate_ref(address)[:16]}",
                 json.dumps(result.__dict__))
    return result


def _rows(session: Session, table: type, ids: list[int]) -> list:
    return [row for part in chunks(ids) for row in session.exec(select(table).where(table.id.in_(part))).all()]


def _when(row: InboundMessage | OutboundMessage) -> dt.datetime:
    at = row.received_at if isinstance(row, InboundMessage) else row.sent_at or row.created_at
    return aware(at)


def _write_mbox(path: Path, inbound: list[InboundMessage], outbound: list[OutboundMessage],
                progress: Callable[[int, int], None] | None) -> None:
    rows = sorted([*inbound, *outbound], key=lambda r: (_when(r), r.id))
    box = mailbox.mbox(path, create=True)
    box.lock()
    try:
        for done, row in enumerate(rows, 1):
            message = mailbox.mboxMessage(row.raw)
            sender = row.envelope_from or row.from_addr or "MAILER-DAEMON"
            message.set_from(email.utils.parseaddr(sender)[1] or "MAILER-DAEMON", _when(row).timetuple())
            box.add(message)
            if progress and (done % PROGRESS_EVERY == 0 or done == len(rows)):
                progress(done, len(rows))
        box.flush()
    finally:
        box.unlock()
        box.close()


def _document(session: Session, addresses: list[str], candidate_ids: list[int], conversation_ids: list[int],
              inbound: list[InboundMessage], outbound: list[OutboundMessage]) -> dict[str, object]:
    candidates = _rows(session, Candidate, candidate_ids)
    conversations = _rows(session, Conversation, conversation_ids)
    emails = {c.id: c.email for c in candidates}
    return {
        "exported_at": utcnow().isoformat(),
        "addresses": addresses,
        "candidates": [{"email": c.email, "name": c.name, "created_at": aware(c.created_at).isoformat()}
                       for c in candidates],
        "conversations": [{"id": c.id, "employee_number": _number(session, c.employee_id),
                           "candidate": emails.get(c.candidate_id), "created_at": aware(c.created_at).isoformat()}
                          for c in conversations],
        "mail_log": [json_views.log_json(session, m) for m in sorted(outbound, key=lambda r: (_when(r), r.id))],
        "inbound": [json_views.inbound_json(session, m) for m in sorted(inbound, key=lambda r: (_when(r), r.id))],
    }


def _number(session: Session, employee_id: int) -> int | None:
    employee = session.get(Employee, employee_id)
    return employee.number if employee else None
