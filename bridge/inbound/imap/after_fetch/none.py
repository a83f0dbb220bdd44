"""`none`: leave the fetched messages as they are (the folder's last UID alone says what was taken)."""

from __future__ import annotations

from imapclient import IMAPClient


def apply(client: IMAPClient, uids: list[int], folder: str | None) -> None:
    """Nothing: the messages stay unread and in place."""
