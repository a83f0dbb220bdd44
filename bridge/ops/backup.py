"""`replybridge backup FILE`: a consistent copy of the SQLite database while `serve` runs and writes.

SQLite's online backup copies the database page by page. A step that meets a write made by another
connection since the last step starts the copy again, so under a steady stream of 250s a copy in steps
would never end. The copy therefore reads from one read transaction held open from the first step to
the last: every step sees the same snapshot, and in WAL mode a reader never blocks a writer, so the
receiver's commits go on during the copy (the write-ahead log grows meanwhile and is folded back by the
next checkpoint after it). Steps of PAGES pages let the command show progress and stop cleanly.

The copy is written to a temporary file beside FILE (mode 0600), checked (quick_check, a known schema
revision), flushed to the disk and only then linked to FILE, so a crash never leaves half a backup under
FILE and an existing FILE is never replaced. The secret key is not in the backup: see key_location().
PostgreSQL has its own tools (pg_dump, pg_restore): the commands refuse with a pointer to them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from bridge.config.settings import current, where
from bridge.errors import ConfigError, InputError
from models.db import BUSY_TIMEOUT_MS, HEAD, MIGRATIONS
from models.url import sqlite_file

PAGES = 1024  # pages per step: 4 MiB at SQLite's default page size, a progress line per few per cent
OPERATIONS = "README.md, Operations -> Backups"
SQLITE_MAGIC = b"SQLite format 3\x00"

Progress = Callable[[int, int], None]  # (pages copied, pages in all), after each step


@dataclass(frozen=True)
class Contents:
    """What a database file holds: its schema revision and how many messages and Mail Log entries."""

    path: Path
    size: int
    revision: str | None  # None: not initialised
    messages: int
    mail_log: int

    def as_json(self) -> dict[str, object]:
        return {"path": str(self.path), "size": self.size, "revision": self.revision, "messages": self.messages,
                "mail_log_entries": self.mail_log}


def counted(n: int, one: str, many: str) -> str:
    """"1 message", "2 messages"."""
    return f"{n} {one if n == 1 else many}"


def sqlite_database(command: str) -> Path:
    """The SQLite file of the database_url setting; a clear error naming PostgreSQL's own tools otherwise."""
    url = current().database_url
    if make_url(url).get_backend_name() != "sqlite":
        tools = {"backup": "`pg_dump -Fc`", "restore": "`pg_restore` (or `psql` for a plain SQL dump)"}[command]
        raise ConfigError(f"`replybridge {command}` works on SQLite; this database is PostgreSQL: use {tools} "
                          f"instead ({OPERATIONS})")
    path = sqlite_file(url)
    if path is None:
        raise ConfigError(f"the database {url} is held in memory: there is no file to {command}")
    return path


def key_location() -> Path | None:
    """Where the secret key comes from: the key file's path, or None when the secret_key setting holds it.
    Neither is ever in a backup."""
    from bridge import crypto  # cryptography loads only for the commands that speak of the key

    return None if current().secret_key else crypto.key_file_path()


def key_reminder() -> str:
    """Where the key is, and why it is kept apart."""
    path = key_location()
    held = f"held by the setting {where('secret_key')}" if path is None else f"in the key file {path}"
    return (f"The secret key is not in the backup: it is {held}. Keep a copy of it apart, in a safe place: "
            "without it the stored passwords and tokens cannot be decrypted.")


def take(target: Path, progress: Progress | None = None) -> Contents:
    """Copy the live database to `target` (which must not exist yet); what the copy holds."""
    source = sqlite_database("backup")
    if not source.is_file():
        raise ConfigError(f"there is no database at {source}: nothing to back up")
    _check_new_file(target)
    with temporary_beside(target) as partial:
        _copy(source, partial, progress)
        contents = inspect(partial, thorough=False)
        _publish(partial, target)
    return Contents(target.resolve(), contents.size, contents.revision, contents.messages, contents.mail_log)


def inspect(path: Path, *, thorough: bool) -> Contents:
    """Check that `path` is a whole SQLite database of replybridge's (integrity_check when `thorough`, else
    quick_check; an alembic_version table), read without changing it; what it holds. Whether this version
    can use its schema revision is revision_problem's to say."""
    if not path.is_file():
        raise InputError(f"{path} is not a file")
    with path.open("rb") as f:
        if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise InputError(f"{path} is not a SQLite database, so not a replybridge backup")
    try:
        with read_only(path) as conn:
            _check_integrity(conn, path, thorough)
            revision = _revision(conn, path)
            messages, mail_log = count_rows(conn, "inbound_message"), count_rows(conn, "outbound_message")
    except sqlite3.DatabaseError as err:
        raise InputError(f"{path} is damaged or cut short ({err}): it cannot be read") from None
    return Contents(path, path.stat().st_size, revision, messages, mail_log)


def revision_problem(revision: str | None) -> str | None:
    """What is wrong with a database at schema `revision` for this version, or None at HEAD."""
    if revision == HEAD:
        return None
    if revision is None:
        return "it holds no schema revision (not initialised)"
    if revision in known_revisions():
        return f"its schema is at revision {revision}, older than this version's {HEAD}"
    if revision.isdigit() and int(revision) > int(HEAD):
        return f"its schema revision {revision} is newer than this version's {HEAD}: it was made by a newer replybridge"
    return f"its schema revision {revision!r} is not one of replybridge's"


def known_revisions() -> list[str]:
    """The schema revisions of this version, oldest first (the migrations' own list)."""
    from alembic.script import ScriptDirectory  # only these commands read the migrations

    return [s.revision for s in reversed(list(ScriptDirectory(str(MIGRATIONS)).walk_revisions()))]


def count_rows(conn: sqlite3.Connection, table: str) -> int:
    """Rows in `table`; 0 where an older schema has no such table."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is None:
        return 0
    return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608 - our own table names


def copy_pages(source: sqlite3.Connection, destination: Path, progress: Progress | None) -> None:
    """SQLite's online backup of `source` into the new file `destination`, PAGES at a time, from the snapshot
    of one read transaction; the copy is left in rollback-journal mode, one self-contained file, on disk."""
    dest = sqlite3.connect(destination, isolation_level=None)
    try:
        # nothing of a half copy is worth a journal or an fsync per step: the file is fsynced once at the end
        dest.execute("PRAGMA journal_mode=OFF")
        dest.execute("PRAGMA synchronous=OFF")
        source.backup(dest, pages=PAGES, progress=_steps(progress))
        dest.execute("PRAGMA journal_mode=DELETE")  # the copied header says WAL; one file needs no -wal
    finally:
        dest.close()
    fd = os.open(destination, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _steps(progress: Progress | None) -> Callable[[int, int, int], None] | None:
    if progress is None:
        return None
    return lambda _status, remaining, total: progress(total - remaining, total)


def _copy(source: Path, destination: Path, progress: Progress | None) -> None:
    conn = sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one snapshot for every step (module docstring)
        if _revision(conn, source) is None:
            raise ConfigError(f"the database {source} is not initialised: nothing to back up")
        copy_pages(conn, destination, progress)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _check_new_file(target: Path) -> None:
    if target.exists() or target.is_symlink():
        raise InputError(f"{target} exists: a backup never replaces a file; name a new one")
    if not target.parent.is_dir():
        raise InputError(f"the folder {target.parent} does not exist")


@contextlib.contextmanager
def temporary_beside(target: Path) -> Iterator[Path]:
    """A new empty file (0600) in `target`'s folder, removed with its journal unless published."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
    finally:
        for leftover in (partial, partial.with_name(partial.name + "-journal")):
            leftover.unlink(missing_ok=True)


def _publish(partial: Path, target: Path) -> None:
    """`partial` becomes `target` at once; a `target` made meanwhile is kept (a hard link never replaces)."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise InputError(f"{target} appeared while the backup ran: it was left alone; name a new file") from None
    sync_folder(target.parent)


def sync_folder(folder: Path) -> None:
    """A rename or link in `folder` is on the disk once this returns."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that can change nothing, beside the file either: no -wal, -shm or journal is made."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def _check_integrity(conn: sqlite3.Connection, path: Path, thorough: bool) -> None:
    found = [row[0] for row in conn.execute("PRAGMA integrity_check" if thorough else "PRAGMA quick_check")]
    if found != ["ok"]:
        raise InputError(f"{path} is damaged: SQLite's integrity check says {'; '.join(found[:3])}")


def _revision(conn: sqlite3.Connection, path: Path) -> str | None:
    """The schema revision; an error when the database is not replybridge's."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone() is None:
        if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise InputError(f"{path} is a SQLite database but not replybridge's (it has no schema revision)")
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None
