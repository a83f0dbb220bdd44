"""APPEND a message to an IMAP folder exactly once: a retry first searches for its Message-ID.

Used for Sent-folder copies and for delivering replies into a recruiter's INBOX.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from imapclient import IMAPClient

log = logging.getLogger(__name__)


def already_there(client: IMAPClient, folder: str, message_id: str) -> bool:
    client.select_folder(folder, readonly=True)
    return bool(client.search(["HEADER", "Message-ID", message_id]))


def append_once(client: IMAPClient, folder: str, message_id: str | None, raw: bytes, when: dt.datetime,
                *, retry: bool, flags: Sequence[bytes] = ()) -> bool:
    """Append unless a retry finds the message there already; True when it appended."""
    if retry and message_id and already_there(client, folder, message_id):
        log.info("%s is in %s already; not appended again", message_id, folder)
        return False
    client.append(folder, raw, flags=list(flags), msg_time=when)
    return True
