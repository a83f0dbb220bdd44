"""Removing set-up: an SMTP account, an IMAP server or an alias, refused while something still uses it
(the refusal names what, and what to do first). History keeps its words: sent mail keeps the From and the
account name it went out with, so removing an alias only unlinks its old messages from it."""

from __future__ import annotations

from sqlalchemy import delete, or_, update
from sqlmodel import Session, select

from bridge import audit
from bridge.accounts.aliases import get_alias
from bridge.accounts.imap_servers import get_imap
from bridge.accounts.smtp_accounts import get_smtp
from bridge.errors import InUse
from models import UNSENT_STATUSES, Alias, ImapFolderState, ImapServer, OAuthGrant, OutboundMessage, SmtpAccount


def _refuse_if_aliases(session: Session, column, what: str, fix: str) -> None:  # noqa: ANN001 - an Alias column
    users = sorted(session.exec(select(Alias.description).where(column)).all())
    if users:
        raise InUse(f"{what} is used by the alias(es) {', '.join(map(repr, users))}: {fix} first")


def remove_smtp(session: Session, name: str) -> None:
    account = get_smtp(session, name)
    _refuse_if_aliases(session, Alias.smtp_account_id == account.id, f"the SMTP account {name!r}",
                       "give them another account (replybridge alias set DESCRIPTION --smtp NAME)")
    through_default = or_(OutboundMessage.automated, Alias.smtp_account_id.is_(None))  # as queue.account_for
    waiting = session.exec(select(OutboundMessage.id).join(Alias, Alias.id == OutboundMessage.alias_id, isouter=True)
                           .where(OutboundMessage.status.in_(UNSENT_STATUSES), through_default)).first()
    if account.is_default and waiting is not None:
        raise InUse(f"the SMTP account {name!r} is the database-wide account and mail waits to go through it: make "
                    "another account the database-wide one first (replybridge smtp set NAME --default)")
    _forget(session, account)
    audit.record(session, "account", f"smtp {account.name}", "removed")


def remove_imap(session: Session, name: str) -> None:
    server = get_imap(session, name)
    _refuse_if_aliases(session, Alias.imap_server_id == server.id, f"the IMAP server {name!r}",
                       "link them to another server, or none (replybridge alias set DESCRIPTION --imap NAME or "
                       "--imap \"\")")
    session.exec(delete(ImapFolderState).where(ImapFolderState.imap_server_id == server.id))
    _forget(session, server)
    audit.record(session, "account", f"imap {server.name}", "removed")


def remove_alias(session: Session, description: str) -> None:
    alias = get_alias(session, description)
    waiting = session.exec(select(OutboundMessage.id).where(OutboundMessage.alias_id == alias.id,
                                                            OutboundMessage.status.in_(UNSENT_STATUSES))).all()
    if waiting:
        raise InUse(f"the alias {description!r} has {len(waiting)} message(s) waiting to be sent: let them go "
                    "out, or remove them from the queue, first")
    session.exec(update(OutboundMessage).where(OutboundMessage.alias_id == alias.id).values(alias_id=None))
    session.delete(alias)
    session.flush()
    audit.record(session, "account", f"alias {alias.description}", "removed")


def _forget(session: Session, account: SmtpAccount | ImapServer) -> None:
    kind = "smtp" if isinstance(account, SmtpAccount) else "imap"
    session.exec(delete(OAuthGrant).where(OAuthGrant.account_kind == kind, OAuthGrant.account_id == account.id))
    session.delete(account)
    session.flush()
