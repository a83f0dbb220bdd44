"""The copies of a candidate's mail the bridge left in IMAP folders, found by Message-ID and deleted for an
erasure (`candidate erase --from-imap`): what it filed in the Sent folder of each alias's IMAP server, what it
handed off into a recruiter's INBOX (`imap` hand-off), and the originals it fetched from each poll folder
(or from the folder `move:FOLDER` put them in).

This runs before the database part of an erasure: should a server fail, the erasure stops naming it and
nothing is removed from the database, so running it again retries (deleting is idempotent). A copy is
flagged \\Deleted and expunged by UID (UID EXPUNGE where the server offers UIDPLUS, else EXPUNGE).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from imapclient import IMAPClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge.accounts.aliases import alias_for
from bridge.accounts.oauth.tokens import bearer_for
from bridge.errors import BridgeError
from bridge.net.connections import logout_quietly
from bridge.net.imap_append import connect
from bridge.outbound.sent_folder import find_sent_folder
from bridge.privacy.selection import Selection, chunks
from models import Alias, Employee, ImapServer, InboundMessage, OutboundMessage

log = logging.getLogger(__name__)

SENT = "(Sent)"  # stands for the server's Sent folder, found on the server as the Sent appends find it
IMAP_HAND_OFF_STATES = ("pending", "delivered", "failed")  # an `imap` hand-off may have appended the message
FILED_STATES = ("appended", "pending", "failed")  # a Sent append may have happened (a retry searches first)

# server id -> folder -> Message-IDs
Plan = dict[int, dict[str, set[str]]]


class ImapCopiesFailed(BridgeError):
    """An IMAP server could not be reached or refused: the erasure stopped before touching the database."""


def plan(session: Session, found: Selection) -> Plan:
    """Where each copy may be: server, folder, Message-IDs."""
    where: Plan = defaultdict(lambda: defaultdict(set))
    for part in chunks(found.all_outbound):
        for mid, server_id in session.exec(
                select(OutboundMessage.message_id, Alias.imap_server_id)
                .join(Alias, Alias.id == OutboundMessage.alias_id)
                .where(OutboundMessage.id.in_(part), OutboundMessage.sent_folder.in_(FILED_STATES),
                       Alias.imap_server_id.is_not(None))).all():
            where[server_id][SENT].add(mid)
    polled = session.exec(select(ImapServer).where(ImapServer.poll_folder.is_not(None))).all()
    for part in chunks(found.all_inbound):
        for mid, source, delivery, employee_id in session.exec(
                select(InboundMessage.message_id, InboundMessage.source, InboundMessage.delivery,
                       InboundMessage.employee_id).where(InboundMessage.id.in_(part))).all():
            if not mid:
                continue
            if delivery in IMAP_HAND_OFF_STATES and employee_id is not None:
                server_id = _hand_off_server(session, employee_id)
                if server_id is not None:
                    where[server_id]["INBOX"].add(mid)
            if source == "imap":
                for server in polled:
                    for folder in _polled_folders(server):
                        where[server.id][folder].add(mid)
    return where


def _hand_off_server(session: Session, employee_id: int) -> int | None:
    """The IMAP server of the employee's default alias, where the `imap` hand-off appends."""
    employee = session.get(Employee, employee_id)
    alias = alias_for(session, employee, None) if employee else None
    return alias.imap_server_id if alias else None


def _polled_folders(server: ImapServer) -> list[str]:
    folders = [server.poll_folder] if server.poll_folder else []
    if server.poll_after.startswith("move:"):
        folders.append(server.poll_after.removeprefix("move:"))
    return folders


def remove(session: Session, found: Selection, *, count_only: bool = False,
           progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Delete (or with `count_only`, count) the copies; "server/folder" -> how many. Raises ImapCopiesFailed
    naming the server at the first failure."""
    engine = session.get_bind()
    counts: dict[str, int] = {}
    for server_id, folders in sorted(plan(session, found).items()):
        server = session.get(ImapServer, server_id)
        if server is None:
            continue
        if progress:
            progress(f"IMAP server {server.name}: looking for {sum(map(len, folders.values()))} copies")
        counts.update(_on_server(engine, server, folders, count_only))
    return counts


def _on_server(engine: Engine, server: ImapServer, folders: dict[str, set[str]], count_only: bool
               ) -> dict[str, int]:
    client, why = connect(server, lambda: bearer_for(engine, server))
    if client is None:
        raise ImapCopiesFailed(f"IMAP server {server.name}: {why}; nothing was erased (run it again to retry)")
    counts: dict[str, int] = {}
    try:
        for folder, message_ids in sorted(folders.items()):
            name = find_sent_folder(client, server.sent_folder) if folder == SENT else folder
            if folder != SENT and not client.folder_exists(name):
                continue  # a poll or move folder that is gone holds no copies
            counts[f"{server.name}/{name}"] = _in_folder(client, name, message_ids, count_only)
    except ImapCopiesFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure stops the erasure, naming the server
        raise ImapCopiesFailed(f"IMAP server {server.name}: {exc}; nothing was erased from the database "
                               "(run it again to retry)") from None
    finally:
        logout_quietly(client)
    return counts


def _in_folder(client: IMAPClient, folder: str, message_ids: set[str], count_only: bool) -> int:
    """How many messages in `folder` carry one of the Message-IDs; deleted and expunged unless count_only."""
    client.select_folder(folder, readonly=count_only)
    uids: set[int] = set()
    for mid in sorted(message_ids):
        uids |= set(client.search(["HEADER", "Message-ID", mid]))  # with its <>: no other id contains it
    if uids and not count_only:
        client.delete_messages(sorted(uids))
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(sorted(uids))
        else:
            client.expunge()
        log.info("%s copies deleted from %s", len(uids), folder)
    if client.has_capability("UNSELECT"):
        client.unselect_folder()
    else:
        client.close_folder()
    return len(uids)
