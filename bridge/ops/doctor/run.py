"""The doctor's checks in order: the key and the database first, since every other check reads through them;
file permissions before the database is opened, since opening it closes its file to others (models.db)."""

from __future__ import annotations

from bridge.ops.doctor import Finding, accounts, database, files, folders, key, warn

NEEDS_DATABASE = "accounts and poll folders"


def run(account_deadline_s: float) -> list[Finding]:
    """Every check; the account checks in parallel, waited for at most `account_deadline_s` together."""
    found = [key.secret_key(), *files.permissions()]
    reached, engine = database.reach()
    found.append(reached)
    if engine is None:
        return [*found, warn(NEEDS_DATABASE, "not checked: the database cannot be used", "fix the database first")]
    if found[0].status == "ok":
        found.append(key.stored_secrets(engine))
    return [*found, *accounts.test_connections(engine, account_deadline_s), *folders.poll_folders(engine)]
