r"""`seen`: flag the fetched messages \Seen, so a mail client shows them read (the default)."""

from __future__ import annotations

from imapclient import IMAPClient

SEEN = b"\\Seen"


def apply(client: IMAPClient, uids: list[int], folder: str | None) -> None:
    client.add_flags(uids, [SEEN], silent=True)
