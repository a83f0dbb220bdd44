"""SMTP accounts: adding and editing (fields validated once in bridge.accounts.servers), look-ups, and the
database-wide account automated mail and error reports go through."""

from __future__ import annotations

from sqlmodel import Session, select

from bridge import audit, crypto
from bridge.accounts.servers import ServerFields, by_id, by_name, no_password_with_oauth, unique_name, use_oauth
from bridge.accounts.validation import about, check_name
from bridge.errors import InputError
from bridge.input_checks import check_address
from bridge.memo import remembered
from models import SmtpAccount


def add_smtp(session: Session, fields: ServerFields, *, is_default: bool = False,
             provider_files_sent: bool = False, oauth: str | None = None, oauth_flow: str = "delegated",
             from_name: str | None = None, from_address: str | None = None) -> SmtpAccount:
    if oauth is not None:
        no_password_with_oauth(fields)
    account = _save_smtp(session, SmtpAccount(), fields, is_default, provider_files_sent)
    set_identity(session, account, from_name, from_address)
    audit.record(session, "account", f"smtp {account.name}", "added")
    return use_oauth(session, account, oauth, oauth_flow) if oauth is not None else account


def update_smtp(session: Session, account_id: int, fields: ServerFields, *, is_default: bool,
                provider_files_sent: bool, from_name: str | None = None, from_address: str | None = None
                ) -> SmtpAccount:
    """Edit an account. No password (None) keeps the stored one: forms never show it, so empty means
    unchanged; without a username the stored password goes too (it could never be used). The sender
    identity: None keeps it, "" clears it."""
    account = _save_smtp(session, smtp_by_id(session, account_id), fields, is_default, provider_files_sent)
    audit.record(session, "account", f"smtp {account.name}",
                 "changed" + (", new password" if fields.password else ""))
    return set_identity(session, account, from_name, from_address)


def _save_smtp(session: Session, account: SmtpAccount, fields: ServerFields, is_default: bool,
               provider_files_sent: bool) -> SmtpAccount:
    f = fields.validated("smtp")
    unique_name(session, SmtpAccount, f.name, account.id, "an SMTP account")
    if is_default:
        others = select(SmtpAccount).where(SmtpAccount.is_default)
        if account.id is not None:
            others = others.where(SmtpAccount.id != account.id)
        for other in session.exec(others):
            other.is_default = False
            session.add(other)
    if f.password:
        account.secret = crypto.encrypt(f.password)
    elif not f.username or account.id is None:
        account.secret = None
    account.name, account.host, account.port, account.security = f.name, f.host, f.port, f.security
    account.username, account.timeout, account.ca_file = f.username, f.timeout, f.ca_file
    account.is_default, account.provider_files_sent = is_default, provider_files_sent
    session.add(account)
    session.flush()
    return account


def set_identity(session: Session, account: SmtpAccount, from_name: str | None, from_address: str | None
                 ) -> SmtpAccount:
    """The friendly name and address the account's own mail goes out under (None: unchanged, "": unset)."""
    if from_name is not None:
        with about("from_name"):
            account.from_name = check_name(from_name, "from name") if from_name.strip() else None
    if from_address is not None:
        with about("from_address"):
            account.from_address = check_address(from_address, "from address") if from_address.strip() else None
    session.add(account)
    session.flush()
    return account


def own_address(account: SmtpAccount) -> str | None:
    """The address the account's own mail goes out from: its from address, else its username when that is
    an address; None when it has neither."""
    if account.from_address:
        return account.from_address
    try:
        return check_address(account.username or "", "the account's username")
    except InputError:
        return None


def get_smtp(session: Session, name: str) -> SmtpAccount:
    return by_name(session, SmtpAccount, name, "SMTP account")


def smtp_by_id(session: Session, account_id: int) -> SmtpAccount:
    return by_id(session, SmtpAccount, account_id, "SMTP account")


def default_smtp(session: Session) -> SmtpAccount | None:
    """The database-wide account for automated mail and aliases without their own."""
    return remembered(session, "default_smtp",
                      lambda: session.exec(select(SmtpAccount).where(SmtpAccount.is_default)).first())
