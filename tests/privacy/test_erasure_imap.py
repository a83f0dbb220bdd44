"""`candidate erase --from-imap` against a real Dovecot: the copies the bridge filed in the Sent folder and
handed off into the recruiter's INBOX are really gone (searched by Message-ID afterwards), the others stay;
a server that fails stops the erasure, naming it, with nothing erased from the database."""

from __future__ import annotations

import json

import pytest
from imapclient import IMAPClient

from tests.helpers.bridge import Bridge
from tests.helpers.candidate_data import LENA, OTHER, found_in_tables, stage
from tests.helpers.ports import closed_port
from tests.helpers.setup_steps import add_imap
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot

pytestmark = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")


def found_by_message_id(server: Dovecot, folder: str, message_id: str) -> list[int]:
    with IMAPClient(server.host, server.port, ssl=False, timeout=10) as client:
        client.login(server.user, server.password)
        client.select_folder(folder, readonly=True)
        return client.search(["HEADER", "Message-ID", message_id])


def test_copies_in_sent_and_the_recruiters_inbox_are_deleted_and_expunged(
        lite_bridge: Bridge, smtp_peer, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    add_imap(lite_bridge, dovecot, monkeypatch)
    lite_bridge.run("employee", "set-delivery", "1042", "imap")  # replies are handed off into her INBOX
    _peer, staged = stage(lite_bridge, smtp_peer, monkeypatch, imap="mailbox")
    lena_ids = [staged.lena_sent["message_id"], staged.lena_reply["message_id"], staged.lena_private["message_id"]]
    other_sent = next(e for e in lite_bridge.json("log") if e["to"] == OTHER)["message_id"]
    other_ids = [other_sent, staged.other_reply["message_id"]]
    assert [len(found_by_message_id(dovecot, f, m)) for f, m in zip(["Sent", "INBOX", "INBOX"], lena_ids,
                                                                     strict=True)] == [1, 1, 1]

    lite_bridge.run("imap", "set", "mailbox", "--port", str(closed_port()))
    failed = lite_bridge.run("candidate", "erase", LENA, "--from-imap", ok=False)
    assert failed.exit_code == 1 and "IMAP server mailbox" in failed.stderr and "nothing was erased" in failed.stderr
    assert found_in_tables(lite_bridge.engine())  # the database is untouched

    lite_bridge.run("imap", "set", "mailbox", "--port", str(dovecot.port))
    counted = json.loads(lite_bridge.run("candidate", "erase", LENA, "--from-imap", "--dry-run", "--json").stdout)
    assert counted["imap"] == {"mailbox/Sent": 1, "mailbox/INBOX": 2}
    assert len(found_by_message_id(dovecot, "INBOX", lena_ids[1])) == 1  # a dry run deletes nothing

    done = json.loads(lite_bridge.run("candidate", "erase", LENA, "--from-imap", "--json").stdout)
    assert done["imap"] == {"mailbox/Sent": 1, "mailbox/INBOX": 2}
    for folder, message_id in zip(["Sent", "INBOX", "INBOX"], lena_ids, strict=True):
        assert found_by_message_id(dovecot, folder, message_id) == []
    assert [len(found_by_message_id(dovecot, f, m)) for f, m in zip(["Sent", "INBOX"], other_ids, strict=True)] \
        == [1, 1]
    assert not any(b"zephyrquartz" in raw.lower() for f in ("Sent", "INBOX") for raw in dovecot.folder_messages(f))
    assert found_in_tables(lite_bridge.engine()) == []
    again = json.loads(lite_bridge.run("candidate", "erase", LENA, "--from-imap", "--json").stdout)
    assert again["total"] == 0 and again["erased_before"] == 1
