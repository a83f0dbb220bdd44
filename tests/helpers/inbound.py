"""Inbound helpers: deliver into Dovecot as an MTA would, ingest through the CLI, wait until routed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

from imapclient import IMAPClient
from sqlalchemy import func
from sqlmodel import Session, select

from models import InboundMessage
from tests.helpers.bridge import Bridge
from tests.servers.dovecot import Dovecot


def ingest_json(b: Bridge, message: str) -> dict:
    return json.loads(b.run("ingest", "-", "--json", stdin=message).stdout)


def routed(b: Bridge, count: int, timeout: float = 10.0) -> list[dict]:
    """The routed messages once `count` of them are routed (routing runs after the 250)."""
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        with Session(b.engine()) as s:
            done = s.exec(select(func.count()).select_from(InboundMessage)
                          .where(InboundMessage.routed_at.is_not(None))).one()
        if done >= count:
            return b.json("messages", "list", "--limit", str(max(count, 200)))
        time.sleep(0.05)
    raise AssertionError(f"{count} routed messages expected within {timeout:g} s, {done} routed")


def deliver(server: Dovecot, raws: list[bytes], folder: str = "INBOX") -> None:
    """What an MTA delivering to the mailbox does; one MULTIAPPEND for the lot."""
    with mailbox(server) as client:
        if len(raws) == 1:
            client.append(folder, raws[0])
        else:
            client.multiappend(folder, raws)


@contextmanager
def mailbox(server: Dovecot) -> Iterator[IMAPClient]:
    client = IMAPClient(server.host, server.port, ssl=False, timeout=10)
    client.login(server.user, server.password)
    try:
        yield client
    finally:
        client.logout()
