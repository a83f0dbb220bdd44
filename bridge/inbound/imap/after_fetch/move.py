"""`move:FOLDER`: move the fetched messages out of the poll folder, with MOVE where the server has it."""

from __future__ import annotations

from imapclient import IMAPClient


def apply(client: IMAPClient, uids: list[int], folder: str | None) -> None:
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    # COPY, then delete exactly these (UID EXPUNGE where UIDPLUS allows)
    client.copy(uids, folder)
    client.add_flags(uids, [b"\\Deleted"], silent=True)
    if client.has_capability("UIDPLUS"):
        client.expunge(uids)
    else:
        client.expunge()
