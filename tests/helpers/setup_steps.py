"""Set-up through the CLI, as an admin does it: SMTP account, alias, IMAP server, poller; send and read the log."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from models import ImapServer
from tests.helpers.bridge import Bridge
from tests.servers.certs import CertPair
from tests.servers.dovecot import Dovecot

PASSWORD = "s3cret-Pa55word!"


def add_account(b: Bridge, peer_host: str, peer_port: int, monkeypatch: pytest.MonkeyPatch, *,
                security: str = "none", user: str | None = None, ca: CertPair | None = None,
                timeout: float = 5, name: str = "main", default: bool = False) -> None:
    args = ["smtp", "add", name, "--host", peer_host, "--port", str(peer_port), "--security", security,
            "--timeout", str(timeout)]
    if user:
        monkeypatch.setenv("RB_SMTP_PW", PASSWORD)
        args += ["--username", user, "--password-env", "RB_SMTP_PW"]
    if ca:
        args += ["--ca-file", str(ca.cafile)]
    if default:
        args.append("--default")
    b.run(*args)


def add_alias(b: Bridge, smtp: str | None = "main", delay_ms: int = 0, imap: str | None = None) -> None:
    args = ["alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana Ruiz",
            "--from", "ana@example.test", "--delay-ms", str(delay_ms)]
    if smtp:
        args += ["--smtp", smtp]
    if imap:
        args += ["--imap", imap]
    b.run(*args)


def send(b: Bridge, to: str = "cand@example.org", subject: str = "Interview", body: str = "Hello") -> int:
    return int(b.run("send", "--employee", "1042", "--to", to, "--subject", subject, "--body", body).stdout)


def only_entry(b: Bridge) -> dict:
    entries = b.json("log")
    assert isinstance(entries, list) and len(entries) == 1
    return entries[0]


def add_imap(b: Bridge, server: Dovecot, monkeypatch: pytest.MonkeyPatch, *, name: str = "mailbox",
             security: str = "starttls", password: str | None = None, sent_folder_name: str | None = None,
             poll_folder: str | None = None) -> None:
    monkeypatch.setenv(IMAP_PW_ENV, password or server.password)
    port = server.ssl_port if security == "ssl" else server.port
    args = ["imap", "add", name, "--host", "localhost", "--port", str(port), "--security", security,
            "--username", server.user, "--password-env", IMAP_PW_ENV, "--ca-file", str(server.cafile),
            "--timeout", "5"]
    if sent_folder_name:
        args += ["--sent-folder", sent_folder_name]
    if poll_folder:
        args += ["--poll-folder", poll_folder]
    b.run(*args)


def add_poller(b: Bridge, server: Dovecot, monkeypatch: pytest.MonkeyPatch, *, folder: str = "INBOX",
               password: str | None = None) -> int:
    """`imap add ... --poll-folder FOLDER` through the CLI; returns the server's id."""
    monkeypatch.setenv(PW_ENV, password or server.password)
    b.run("imap", "add", "catchall", "--host", "localhost", "--port", str(server.port), "--security", "starttls",
          "--username", server.user, "--password-env", PW_ENV, "--ca-file", str(server.cafile), "--timeout", "5",
          "--poll-folder", folder)
    with Session(b.engine()) as s:
        return s.exec(select(ImapServer.id).where(ImapServer.name == "catchall")).one()


PW_ENV = "RB_POLL_PW"


IMAP_PW_ENV = "RB_IMAP_PW"
