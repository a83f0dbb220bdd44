"""The secret key: where it is found, that it is a key, and that it decrypts the stored secrets.

A wrong key is the classic failure after a restore on a new machine: the database came back, its key did
not, and every SMTP and IMAP password fails to decrypt. The check names the accounts, never a secret.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge import crypto
from bridge.config.settings import where
from bridge.errors import ConfigError
from bridge.ops.backup import key_location
from bridge.ops.doctor import Finding, fail, ok
from models import ImapServer, OAuthClient, OAuthGrant, SmtpAccount, Webhook
from models.db import session_scope

KEY = "secret key"
SECRETS = "stored secrets"
NO_KEY_FIX = ("put back the key of the installation this database belongs to (keep it apart from backups); only on "
              "a new installation with no stored secrets, `replybridge init` creates a new one")


def secret_key() -> Finding:
    """Found where, and a key Fernet accepts."""
    path = key_location()
    found = f"from the setting {where('secret_key')}" if path is None else f"from the key file {path}"
    try:
        crypto.encrypt("doctor")  # loads the key and makes it a Fernet key: every failure is a ConfigError
    except ConfigError as err:
        return fail(KEY, f"{err} ({found.removeprefix('from ')})", NO_KEY_FIX)
    except OSError as err:
        return fail(KEY, f"the key file {path} cannot be read ({err.strerror})",
                    "let the user that runs replybridge read it (chmod 600, owned by that user)")
    return ok(KEY, found)


def stored_secrets(engine: Engine) -> Finding:
    """Every stored password, client secret, token and webhook secret decrypts with the key."""
    with session_scope(engine) as session:
        owned = _secrets(session)
    failing = [owner for owner, token in owned if not _decrypts(token)]
    if not owned:
        return ok(SECRETS, "none stored yet")
    if not failing:
        return ok(SECRETS, f"the key decrypts all {len(owned)}")
    shown = ", ".join(dict.fromkeys(failing))
    return fail(SECRETS, f"the key does not decrypt {len(failing)} of {len(owned)}: {shown}",
                "this is not the key they were stored with: put back the key of the installation the database "
                "came from (after a restore on a new machine, its key file too), or set each password again "
                "(`replybridge smtp set NAME --password-stdin`, the same for imap; `replybridge oauth login` for "
                "tokens)")


def _secrets(session) -> list[tuple[str, str]]:  # noqa: ANN001 - a sqlmodel Session
    """(whose, the stored token) of every encrypted column; webhooks by id (a URL may hold a token itself)."""
    names = {("smtp", i): f"SMTP account {n!r}" for i, n in session.exec(select(SmtpAccount.id, SmtpAccount.name))}
    names |= {("imap", i): f"IMAP server {n!r}" for i, n in session.exec(select(ImapServer.id, ImapServer.name))}
    rows: list[tuple[str, str | None]] = [
        *((names["smtp", i], s) for i, s in session.exec(select(SmtpAccount.id, SmtpAccount.secret))),
        *((names["imap", i], s) for i, s in session.exec(select(ImapServer.id, ImapServer.secret))),
        *((f"OAuth client {n!r}", s) for n, s in session.exec(select(OAuthClient.name, OAuthClient.client_secret))),
        *((f"webhook #{i}", s) for i, s in session.exec(select(Webhook.id, Webhook.secret))),
    ]
    for kind, account_id, refresh, access in session.exec(select(OAuthGrant.account_kind, OAuthGrant.account_id,
                                                                 OAuthGrant.refresh_token, OAuthGrant.access_token)):
        whose = names.get((kind, account_id), f"{kind} account #{account_id}")
        rows += [(f"the OAuth tokens of {whose}", t) for t in (refresh, access)]
    return [(owner, token) for owner, token in rows if token]


def _decrypts(token: str) -> bool:
    try:
        crypto.decrypt(token)
    except ConfigError:
        return False
    return True
