"""`replybridge restore FILE`: a backup made by `replybridge backup` becomes the SQLite database again.

Bad input changes nothing: the backup is checked whole first (a SQLite file, SQLite's integrity check,
a schema revision of replybridge's, not newer than this version's), and a database that holds data is
replaced only with `force`. The caller holds `serve`'s lock on the database (bridge.ops.serve:
sole_serve_of_sqlite), so no `serve` writes to it meanwhile nor starts during the restore.

The backup is copied into a temporary file beside the database and checked again there; the old
database's write-ahead log is folded into it, its -wal and -shm files (which would otherwise be read
as the new file's) are removed, and the copy is renamed over it: a crash leaves the old database or
the new one, whole. A backup of an older schema is upgraded as `replybridge init` does.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bridge.config.settings import current
from bridge.errors import ConfigError, InputError
from bridge.ops.backup import (
    Contents,
    Progress,
    copy_pages,
    count_rows,
    counted,
    inspect,
    known_revisions,
    read_only,
    revision_problem,
    sqlite_database,
    sync_folder,
    temporary_beside,
)
from models.db import HEAD, make_engine, upgrade


@dataclass(frozen=True)
class Held:
    """What a database to be replaced holds."""

    messages: int
    mail_log: int
    employees: int

    def __bool__(self) -> bool:
        return bool(self.messages or self.mail_log or self.employees)

    def __str__(self) -> str:
        return (f"{counted(self.messages, 'message', 'messages')}, "
                f"{counted(self.mail_log, 'Mail Log entry', 'Mail Log entries')} and "
                f"{counted(self.employees, 'employee', 'employees')}")


@dataclass(frozen=True)
class Restored:
    contents: Contents  # the database now, at HEAD
    from_revision: str  # the backup's schema revision
    replaced: Held | None  # what the database held before, when anything

    def as_json(self) -> dict[str, object]:
        replaced = None if self.replaced is None else {
            "messages": self.replaced.messages, "mail_log_entries": self.replaced.mail_log,
            "employees": self.replaced.employees}
        return {**self.contents.as_json(), "from_revision": self.from_revision, "replaced": replaced}


def check_backup(source: Path) -> Contents:
    """The backup, checked whole before anything is touched: something this version can restore into the
    configured SQLite database, or a clear error."""
    target = sqlite_database("restore")
    if not target.parent.is_dir():
        raise ConfigError(f"the folder of the database, {target.parent}, does not exist")
    if not source.exists():
        raise InputError(f"{source} does not exist")
    if source.resolve() == target.resolve():
        raise InputError(f"{source} is the database itself: name a backup made by `replybridge backup FILE`")
    backup = inspect(source, thorough=True)
    problem = revision_problem(backup.revision)
    if problem and backup.revision not in known_revisions():
        raise InputError(f"{source} cannot be restored: {problem}")
    return backup


def restore(backup: Contents, *, force: bool = False, progress: Progress | None = None) -> Restored:
    """Replace the database with `backup` (checked by check_backup; the caller holds serve's lock)."""
    target = sqlite_database("restore")
    held = _held(target, force)
    if held and not force:
        raise InputError(f"the database {target} holds {held}: restoring replaces them all; add --force to replace "
                         "them (take a backup of it first with `replybridge backup FILE`)")
    with temporary_beside(target) as partial:
        with read_only(backup.path) as conn:
            copy_pages(conn, partial, progress)
        inspect(partial, thorough=False)
        _swap(partial, target)
    if backup.revision != HEAD:
        _upgrade()
    return Restored(inspect(target, thorough=False), backup.revision, held or None)


def _held(target: Path, force: bool) -> Held:
    """What the database holds now (nothing when it does not exist yet). One that cannot be read is replaced
    only with `force`."""
    if not target.exists() or target.stat().st_size == 0:
        return Held(0, 0, 0)
    try:
        conn = sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return Held(*(count_rows(conn, t) for t in ("inbound_message", "outbound_message", "employee")))
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        if force:
            return Held(0, 0, 0)
        raise InputError(f"the database {target} cannot be read ({err}); add --force to replace it") from None


def _swap(partial: Path, target: Path) -> None:
    """`partial` replaces `target`: the old log folded in first, so a crash at any point leaves a whole file."""
    if target.exists():
        with contextlib.suppress(sqlite3.DatabaseError):  # a file that is no database (--force) has no log
            conn = sqlite3.connect(target)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
    for side in ("-wal", "-shm", "-journal"):
        target.with_name(target.name + side).unlink(missing_ok=True)
    os.replace(partial, target)
    sync_folder(target.parent)


def _upgrade() -> None:
    engine = make_engine(current().database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
