"""/admin/imap: IMAP servers (the pages' body is server_pages.py; here what only IMAP servers have: the Sent
folder, the poll folder and what happens after fetching, and Test connection up to finding the folders)."""

from __future__ import annotations

from sqlmodel import Session, select

from bridge.accounts import imap_servers, removal
from bridge.checks.connection_check import check_imap
from bridge.web.admin import forms
from bridge.web.admin.server_pages import Kind, pages
from models import ImapFolderState, ImapServer, aware, utcnow


def poll_states(session: Session, rows: list[ImapServer]) -> dict[str, object]:
    """Each poll folder's state for the list: last pass, messages waiting, last error, and the process holding it
    now. Waiting is what the latest pass found and has not fetched yet: with no process watching, more may
    have arrived since."""
    polls: dict[int, dict[str, object]] = {}
    folders = {r.id: r.poll_folder for r in rows if r.poll_folder}
    now = utcnow()
    for st in session.exec(select(ImapFolderState).where(ImapFolderState.imap_server_id.in_(list(folders)))):
        if st.folder != folders[st.imap_server_id]:
            continue
        held = st.lease_owner and st.lease_until and aware(st.lease_until) > now
        polls[st.imap_server_id] = {
            "last_pass": aware(st.last_poll_at).strftime("%Y-%m-%d %H:%M:%S UTC") if st.last_poll_at else None,
            "waiting": st.waiting,
            "error": st.last_error,
            "holder": ":".join(st.lease_owner.split(":")[:2]) if held else None,  # host:pid
        }
    return {"polls": polls}

KIND = Kind(
    name="imap", noun="IMAP server", record="server", model=ImapServer,
    new={"port": "993", "security": "ssl", "timeout": "30", "sent_folder": "auto", "poll_after": "seen",
         "signin": "password", "oauth_flow": "delegated"},
    extra_values=lambda s: {"sent_folder": s.sent_folder, "poll_folder": s.poll_folder or "",
                            "poll_after": s.poll_after},
    options=lambda values: {"sent_folder": forms.text(values, "sent_folder") or "auto",
                            "poll_folder": forms.optional(values, "poll_folder"),
                            "poll_after": forms.text(values, "poll_after") or "seen"},
    add=imap_servers.add_imap, update=imap_servers.update_imap, by_id=imap_servers.imap_by_id,
    check=lambda session, server, _values: check_imap(session.get_bind(), server),
    list_extra=poll_states,
    remove=removal.remove_imap,
    consequence="Its poll folder is no longer watched and its progress is forgotten. A server an alias is linked "
                "to cannot be removed: link the alias to another server first.",
)
router = pages(KIND)
