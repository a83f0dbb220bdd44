"""The `serve` end of the ingest socket (bridge.inbound.ingest_socket): a frame in, the receiver's group
commit, one answer line out, on the receiver's event loop.

A malformed frame ends the connection (the client then stores in-process); a storage failure answers
451, so `ingest` exits 75 and the MTA keeps the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from bridge import metrics
from bridge.config import logs
from bridge.errors import ConfigError
from bridge.inbound import raw_store
from bridge.inbound.ingest_socket import VERB
from bridge.inbound.limits import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)
Store = Callable[[raw_store.Incoming], Awaitable[raw_store.Stored]]


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, store: Store) -> None:
    try:
        while line := await reader.readline():
            verb, _, size = line.strip().partition(b" ")
            if verb != VERB or not size.isdigit() or int(size) > MAX_MESSAGE_BYTES:
                logs.step(log, "refused", source="pipe", code="501", reason="not a frame `ingest` sends")
                writer.write(b"501 expected RBINGEST <size> of at most %d bytes\n" % MAX_MESSAGE_BYTES)
                break
            raw = await reader.readexactly(int(size))
            try:
                stored = await store(raw_store.Incoming(raw, "pipe"))
            except Exception:  # noqa: BLE001 - nothing was stored: ingest exits 75 and the MTA retries
                log.exception("storing a message passed on by `ingest` failed; answered 451")
                metrics.received("pipe", "refused")
                logs.step(log, "refused", source="pipe", code="451", reason="the database could not store it")
                writer.write(b"451 the database could not store the message; try again later\n")
            else:
                writer.write(b"250 %d %s\n" % (stored.id, b"duplicate" if stored.duplicate else b"new"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):  # the client went away mid-frame
        pass
    finally:
        writer.close()


def _claim(path: Path) -> None:
    """A socket file left by a dead serve is removed; a live serve's is not taken over."""
    if not path.exists():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
            return
    raise ConfigError(f"another `replybridge serve` listens on the ingest socket {path}; stop it, or set "
                      "REPLYBRIDGE_INGEST_SOCKET to another path")


async def listen(path: Path, store: Store) -> asyncio.AbstractServer:
    """Listen on `path` (0600), answering frames with `store`."""
    _claim(path)
    server = await asyncio.start_unix_server(lambda r, w: _answer(r, w, store), path=str(path))
    os.chmod(path, 0o600)
    return server


def forget(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
