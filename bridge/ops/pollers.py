"""The IMAP watchers of a running `serve`, kept in step with the set-up without a restart.

Every RESCAN_S the IMAP servers are read again: a server that gained a poll folder gets a watcher
(bridge.inbound.imap.watch), one whose poll folder or connection changed gets a new one, and one that
lost its poll folder, or was removed, has its watcher stopped (it releases the folder's lease, so
another process can take it at once).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge.inbound.imap import folder_state, watch
from models import ImapServer
from models.db import session_scope

log = logging.getLogger(__name__)

RESCAN_S = 10.0


@dataclass
class _Running:
    setup: tuple[object, ...]  # what the watcher was started with: a change means a new watcher
    stop: threading.Event
    thread: threading.Thread


class Pollers:
    """One watcher per IMAP server with a poll folder, for as long as `stop` is not set."""

    def __init__(self, engine: Engine, stop: threading.Event, rescan_s: float = RESCAN_S,
                 owner_pid: int | None = None) -> None:
        self.engine, self.stop, self.rescan_s = engine, stop, rescan_s
        self.owner_pid = owner_pid  # the process the leases name (folder_state.default_owner)
        self.running: dict[int, _Running] = {}
        self._thread = threading.Thread(target=self._run, name="rb-pollers", daemon=True)

    def start(self) -> Pollers:
        self.sync()
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        for running in list(self.running.values()):
            running.thread.join(timeout)

    def _run(self) -> None:
        while not self.stop.wait(self.rescan_s):
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - the database failing: the watchers run on; look again later
                log.warning("could not read the IMAP servers to watch", exc_info=True)
        for running in self.running.values():
            running.stop.set()

    def sync(self) -> None:
        """Start, restart and stop watchers to match the IMAP servers' poll folders now."""
        with session_scope(self.engine) as session:
            wanted = {s.id: (s.name, (s.name, s.host, s.port, s.security, s.username, s.secret, s.poll_folder,
                                      s.poll_after, s.oauth_client_id, s.timeout, s.ca_file))
                      for s in session.exec(select(ImapServer).where(ImapServer.poll_folder.is_not(None)))}
        for server_id in [sid for sid, r in self.running.items() if wanted.get(sid, (None, None))[1] != r.setup]:
            log.info("IMAP server %s changed or stopped polling: its watcher stops", server_id)
            self.running.pop(server_id).stop.set()
        for server_id, (name, setup) in wanted.items():
            if server_id not in self.running:
                self.running[server_id] = self._start(server_id, name, setup)

    def _start(self, server_id: int, name: str, setup: tuple[object, ...]) -> _Running:
        stop = threading.Event()
        owner = f"{folder_state.default_owner(self.owner_pid)}:{server_id}"
        thread = threading.Thread(target=watch.watch, args=(self.engine, server_id, owner, stop),
                                  name=f"rb-imap-{name}", daemon=True)
        thread.start()
        return _Running(setup, stop, thread)
