"""File permissions: the SQLite database (every candidate's mail), its folder and the key file (every stored
password) are for the user that runs replybridge alone."""

from __future__ import annotations

import stat
from pathlib import Path

from bridge.config.settings import current
from bridge.ops.backup import key_location
from bridge.ops.doctor import Finding, fail, ok, warn
from models.url import sqlite_file

CHECK = "permissions"


def permissions() -> list[Finding]:
    """A FAIL per file others may read or write, a FAIL for a folder others may write in, a warning for one they
    may list; one ok line otherwise."""
    files, folders = _paths()
    found = [f for path in files if (f := _file(path))] + [f for path in folders if (f := _folder(path))]
    if found:
        return found
    checked = [*files, *folders]
    if not checked:
        return []
    return [ok(CHECK, ", ".join(f"{p} {_mode(p):04o}" for p in checked) + ": closed to others")]


def _paths() -> tuple[list[Path], list[Path]]:
    """The files and folders that exist: the SQLite database with its -wal and -shm, the key file."""
    files: list[Path] = []
    database = sqlite_file(current().database_url)
    if database is not None and database.is_file():
        database = database.resolve()
        files += [p for p in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm")))
                  if p.is_file()]
    key = key_location()
    if key is not None and key.is_file():
        files.append(key.resolve())
    folders = [files[0].parent] if files else []  # the database's folder (or the key's)
    return files, folders


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _file(path: Path) -> Finding | None:
    mode = _mode(path)
    if not mode & 0o077:
        return None
    who = "others" if mode & 0o007 else "its group"
    return fail(CHECK, f"{path} is mode {mode:04o}: {who} can {_verbs(mode)} it", f"chmod 600 {path}")


def _folder(path: Path) -> Finding | None:
    mode = _mode(path)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        return fail(CHECK, f"the folder {path} is mode {mode:04o}: others can remove or replace the files in it",
                    f"chmod 700 {path}")
    if mode & 0o004:
        return warn(CHECK, f"the folder {path} is mode {mode:04o}: others can list the files in it",
                    f"chmod 700 {path}")
    return None


def _verbs(mode: int) -> str:
    can = [verb for bit, verb in ((0o044, "read"), (0o022, "write")) if mode & bit]
    return " and ".join(can) or "open"
