"""The poll folders: each linked IMAP folder has a live process holding its lease (bridge.inbound.imap.
folder_state), and its last pass did not fail. A folder nobody watches is where replies pile up unseen."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge.inbound.imap.folder_state import holder_ended, owner_process
from bridge.ops.doctor import Finding, fail, ok, warn
from models import ImapFolderState, ImapServer, aware, utcnow
from models.db import session_scope

RECENT = dt.timedelta(minutes=15)  # a pass this recent, with no holder now: `worker --once` on a timer
START = "start `replybridge serve` (or run `replybridge worker --once` every few minutes)"


def poll_folders(engine: Engine) -> list[Finding]:
    """A finding per IMAP server with a poll folder."""
    with session_scope(engine) as session:
        servers = session.exec(select(ImapServer.name, ImapServer.id, ImapServer.poll_folder)
                               .where(ImapServer.poll_folder.is_not(None)).order_by(ImapServer.name)).all()
        states = {(s.imap_server_id, s.folder): s for s in session.exec(select(ImapFolderState))}
    return [_finding(f"poll folder {folder!r} of IMAP server {name!r}", name, states.get((server_id, folder)))
            for name, server_id, folder in servers]


def _finding(check: str, server: str, state: ImapFolderState | None) -> Finding:
    if state is None:
        return warn(check, "never polled: no process has watched it yet", START)
    now = utcnow()
    holder, alive = _holder(state, now)
    seen = _last_pass(state, now) + (f", {state.waiting} messages waiting on the server" if state.waiting else "")
    if state.last_error:
        return fail(check, f"its last pass failed: {state.last_error} ({seen})",
                    f"`replybridge test imap {server}` shows where it fails")
    if holder and alive:
        return ok(check, f"watched by {holder}; {seen}")
    if holder:
        until = aware(state.lease_until).strftime("%H:%M:%S UTC")
        return warn(check, f"held by {holder}, which is no longer running; {seen}",
                    f"its lease runs out at {until}, then a running `replybridge serve` takes the folder over; "
                    f"{START} if none runs")
    if state.last_poll_at and now - aware(state.last_poll_at) < RECENT:
        return ok(check, f"no process holds it between passes; {seen}")
    return warn(check, f"no live process watches it; {seen}", START)


def _holder(state: ImapFolderState, now: dt.datetime) -> tuple[str | None, bool]:
    """Who holds the lease now ("process PID on HOST"), and whether that process is alive (known on this host
    only: elsewhere an unexpired lease is taken for a live one, since its holder renews it every 10 s)."""
    if not state.lease_owner or not state.lease_until or aware(state.lease_until) <= now:
        return None, False
    named = owner_process(state.lease_owner)
    if named is None:
        return state.lease_owner, True
    host, pid = named
    return f"process {pid} on {host}", not holder_ended(state.lease_owner)


def _last_pass(state: ImapFolderState, now: dt.datetime) -> str:
    if not state.last_poll_at:
        return "no pass finished yet"
    seconds = int((now - aware(state.last_poll_at)).total_seconds())
    ago = f"{seconds} s" if seconds < 120 else f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"
    return f"last pass {ago} ago"
