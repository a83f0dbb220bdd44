"""`candidate export` on SQLite and PostgreSQL: one zip whose mbox holds exactly the candidate's messages (from
them and to them, as stored, oldest first) and whose JSON holds their Mail Log entries, received messages and
conversations; an existing file is never overwritten; the export is audited."""

from __future__ import annotations

import json
import mailbox
import re
import zipfile
from pathlib import Path

import pytest
from sqlmodel import Session, select

from models import AuditEvent, InboundMessage, OutboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.candidate_data import LENA, LENA_PRIVATE, stage


def test_the_zip_holds_exactly_their_messages_and_records(bridge: Bridge, smtp_peer, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    _peer, staged = stage(bridge, smtp_peer, monkeypatch)
    out = tmp_path / "lena.zip"
    result = bridge.run("candidate", "export", LENA_PRIVATE, "--out", str(out))
    assert "3/3 messages" in result.stderr and "2 received and 1 sent" in result.stdout

    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["candidate.json", "messages.mbox"]
        (tmp_path / "messages.mbox").write_bytes(archive.read("messages.mbox"))
        document = json.loads(archive.read("candidate.json"))
    box = mailbox.mbox(tmp_path / "messages.mbox")
    ids = [m["Message-ID"] for m in box]
    expected = [staged.lena_sent["message_id"], staged.lena_reply["message_id"], staged.lena_private["message_id"]]
    assert ids == expected  # ours first, then her two replies: oldest first; no forward, no bounce
    with Session(bridge.engine()) as s:
        stored = [s.exec(select(OutboundMessage.raw).where(OutboundMessage.message_id == expected[0])).one(),
                  *[s.exec(select(InboundMessage.raw).where(InboundMessage.message_id == m)).one()
                    for m in expected[1:]]]
    as_stored = [re.sub(rb"(?m)^>From ", b"From ", box.get_bytes(key)) for key in box.iterkeys()]  # mbox quotes "From "
    assert [m.rstrip(b"\n") for m in as_stored] == [raw.replace(b"\r\n", b"\n").rstrip(b"\n") for raw in stored]

    assert document["addresses"] == [LENA_PRIVATE, LENA]
    assert [e["message_id"] for e in document["mail_log"]] == [expected[0]]
    assert [e["to"] for e in document["mail_log"]] == [LENA]
    assert [m["message_id"] for m in document["inbound"]] == expected[1:]
    assert sorted(c["candidate"] for c in document["conversations"]) == sorted([LENA_PRIVATE, LENA])
    assert {c["employee_number"] for c in document["conversations"]} == {1042}
    assert sorted(c["email"] for c in document["candidates"]) == sorted([LENA_PRIVATE, LENA])
    assert document["exported_at"]

    again = bridge.run("candidate", "export", LENA, "--out", str(out), ok=False)
    assert again.exit_code == 1 and "exists already" in again.stderr
    assert zipfile.ZipFile(out).read("candidate.json") == json.dumps(document, ensure_ascii=False,
                                                                     indent=2).encode()
    with Session(bridge.engine()) as s:
        [entry] = s.exec(select(AuditEvent).where(AuditEvent.action == "export")).all()
    assert entry.target.startswith("candidate ") and "lena" not in (entry.target + (entry.detail or "")).lower()
    bad = bridge.run("candidate", "export", "nobody", "--out", str(tmp_path / "x.zip"), ok=False)
    assert bad.exit_code == 1 and "error: address" in bad.stderr and not (tmp_path / "x.zip").exists()
