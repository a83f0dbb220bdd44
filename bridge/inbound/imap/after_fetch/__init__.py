"""What a poller does with fetched messages once they are stored: the registry of after-fetch actions.

One file per action (`seen`, `move`, `none`), each with `apply(client, uids, folder)`; the names are the
`poll_after` setting's (bridge.accounts.imap_servers.AFTER_FETCH_ACTIONS), and a missing file stops the
import rather than a poll.
"""

from __future__ import annotations

from types import ModuleType

from imapclient import IMAPClient

from bridge.accounts.imap_servers import AFTER_FETCH_ACTIONS, AfterFetch
from bridge.inbound.imap.after_fetch import move, none, seen

ACTIONS: dict[str, ModuleType] = {"seen": seen, "move": move, "none": none}
if set(ACTIONS) != set(AFTER_FETCH_ACTIONS):
    raise RuntimeError(f"after-fetch actions {sorted(AFTER_FETCH_ACTIONS)} need a module each: {sorted(ACTIONS)}")


def apply(client: IMAPClient, uids: list[int], after: AfterFetch) -> None:
    """Run the configured action on these UIDs (nothing to do for none)."""
    if uids:
        ACTIONS[after.action].apply(client, uids, after.folder)
