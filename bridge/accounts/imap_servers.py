"""IMAP servers: adding and editing, their Sent folder and optional poll folder (never a Sent folder: that
would take our own mail in as replies), and what a poller does after fetching (`poll_after`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from bridge import audit, crypto
from bridge.accounts.servers import ServerFields, by_id, by_name, no_password_with_oauth, unique_name, use_oauth
from bridge.accounts.validation import about, check_name
from bridge.errors import FieldError
from models import ImapServer

# Names servers commonly give the Sent folder; polling one of them would route our own mail back in.
SENT_NAMES = ("sent", "sent items", "sent messages", "sent mail", "[gmail]/sent mail", "inbox/sent", "gesendet",
              "gesendete elemente", "envoyés", "éléments envoyés", "enviados", "elementos enviados")


def _refuse_self_loop(sent_folder: str, poll_folder: str | None) -> None:
    if poll_folder and (poll_folder.lower() in SENT_NAMES or poll_folder == sent_folder):
        raise FieldError("poll_folder",
                         f"the poll folder {poll_folder!r} is a Sent folder: polling it would take the bridge's own "
                         "sent mail in as replies; poll the mailbox numbered addresses are delivered to (e.g. INBOX)")


# What a poller does with a message once it is stored (the `poll_after` setting); each action is a file in
# bridge/inbound/imap/after_fetch/.
AFTER_FETCH_ACTIONS = ("seen", "move", "none")


@dataclass(frozen=True)
class AfterFetch:
    """The `poll_after` setting read: flag the message \\Seen, move it to `folder`, or leave it."""

    action: str  # one of AFTER_FETCH_ACTIONS
    folder: str | None = None

    @classmethod
    def parse(cls, text: str) -> AfterFetch:
        if text in ("seen", "none"):
            return cls(text)
        if text.startswith("move:") and text[5:].strip():
            return cls("move", text[5:].strip())
        raise ValueError(f"after-fetch action must be seen, none or move:FOLDER, not {text!r}")


def _poll_after(value: str) -> str:
    try:
        AfterFetch.parse(value)
    except ValueError as err:
        raise FieldError("poll_after", str(err)) from None
    return value


def add_imap(session: Session, fields: ServerFields, *, sent_folder: str = "auto",
             poll_folder: str | None = None, poll_after: str = "seen", oauth: str | None = None,
             oauth_flow: str = "delegated") -> ImapServer:
    if oauth is not None:
        no_password_with_oauth(fields)
    server = _save_imap(session, ImapServer(), fields, sent_folder, poll_folder, poll_after, oauth is not None)
    audit.record(session, "account", f"imap {server.name}", "added")
    return use_oauth(session, server, oauth, oauth_flow) if oauth is not None else server


def update_imap(session: Session, server_id: int, fields: ServerFields, *, sent_folder: str,
                poll_folder: str | None, poll_after: str) -> ImapServer:
    """Edit a server. No password (None) keeps the stored one. A running `serve` watches a changed poll
    folder within seconds (bridge.ops.pollers)."""
    server = _save_imap(session, imap_by_id(session, server_id), fields, sent_folder, poll_folder, poll_after)
    audit.record(session, "account", f"imap {server.name}", "changed" + (", new password" if fields.password else ""))
    return server


def _save_imap(session: Session, server: ImapServer, fields: ServerFields, sent_folder: str,
               poll_folder: str | None, poll_after: str, oauth: bool = False) -> ImapServer:
    f = fields.validated("imap")
    with about("sent_folder"):
        sent_folder = check_name(sent_folder, "sent folder")
    with about("poll_folder"):
        poll_folder = check_name(poll_folder, "poll folder") if poll_folder else None
    _refuse_self_loop(sent_folder, poll_folder)
    poll_after = _poll_after(poll_after)
    needs = "an IMAP server needs --username and a password (--password-stdin or --password-env)"
    if not f.username:
        raise FieldError("username", needs)
    if f.password is None and server.secret is None and not oauth and server.oauth_client_id is None:
        raise FieldError("password", needs)
    unique_name(session, ImapServer, f.name, server.id, "an IMAP server")
    if f.password is not None:
        server.secret = crypto.encrypt(f.password)
    server.name, server.host, server.port, server.security = f.name, f.host, f.port, f.security
    server.username, server.timeout, server.ca_file = f.username, f.timeout, f.ca_file
    server.sent_folder, server.poll_folder, server.poll_after = sent_folder, poll_folder, poll_after
    session.add(server)
    session.flush()
    return server


def get_imap(session: Session, name: str) -> ImapServer:
    return by_name(session, ImapServer, name, "IMAP server")


def imap_by_id(session: Session, server_id: int) -> ImapServer:
    return by_id(session, ImapServer, server_id, "IMAP server")
