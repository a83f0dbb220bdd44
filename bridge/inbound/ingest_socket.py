"""`ingest` passes its messages on to the running `serve` over a Unix socket; here are both ends' shared words
and the client, which loads nothing but the standard library.

Why: an MTA's pipe starts `ingest` once per message. Loading the ORM, the parser and the router to store
one message costs most of a second; the running service has them loaded, stores with the SMTP receiver's
group commit and routes in its routing process. The answer comes only after the commit, so `ingest`
exits 0 only for mail on disk. Where no `serve` listens, `ingest` stores in-process as before; a message
whose answer was lost is stored again there and deduplicated by its Message-ID.

The frames carry the bytes exactly (LMTP's DATA would rewrite bare line feeds and dot-stuff lines):
`RBINGEST <size>\\n` and the message; the answer is one line, `250 <id> new|duplicate` or `451 <why>`.

The socket: the `ingest_socket` setting (empty: none), by default beside the SQLite file
(`replybridge.db.ingest`); with PostgreSQL set it to use it. It is 0600, the service's user's
alone, as the database file is.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bridge.config import file
from models.url import DEFAULT_URL, normalized_url, sqlite_file

VERB = b"RBINGEST"
TIMEOUT_S = 60.0  # a service that takes longer is treated as absent: the message is stored in-process


@dataclass(frozen=True)
class Passed:
    id: int
    duplicate: bool


class Refused(Exception):
    """The service answered that it could not store the message now (its storage failed): try again later."""


def socket_path() -> Path | None:
    """Where `serve` listens for `ingest`, or None where there is no such place."""
    configured = file.raw("ingest_socket")  # read lean: settings.current() costs `ingest` its blink
    if configured is not None:
        return Path(str(configured)) if str(configured).strip() else None
    database = sqlite_file(normalized_url(str(file.raw("database_url") or DEFAULT_URL)))
    return database.with_name(database.name + ".ingest") if database else None


def pass_on(raws: list[bytes], timeout: float = TIMEOUT_S) -> list[Passed] | None:
    """Each message stored by the running service, or None when none answered: store them in-process then.

    Raises Refused when the service answered 451 (its storage failed; the same storage would fail here).
    """
    path = socket_path()
    if path is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            answers = sock.makefile("rb")
            return [_one(sock, answers, raw) for raw in raws]
    except (OSError, ValueError):  # nobody listens, or the answer was lost: in-process storing decides
        return None


def _one(sock: socket.socket, answers: BinaryIO, raw: bytes) -> Passed:
    sock.sendall(VERB + b" %d\n" % len(raw) + raw)
    line = answers.readline(1000).decode("utf-8", "replace").strip()
    code, _, rest = line.partition(" ")
    if code == "250":
        number, _, kind = rest.partition(" ")
        return Passed(int(number), kind == "duplicate")
    if code.startswith("4"):
        raise Refused(rest or "the service could not store the message")
    raise ValueError(f"unexpected answer {line!r}")
