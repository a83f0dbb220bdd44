"""`replybridge backup FILE` and `replybridge restore FILE`: the SQLite database out to a file and back
(bridge.ops.backup, bridge.ops.restore). PostgreSQL has pg_dump and pg_restore; both commands say so."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy import create_engine

from bridge.cli.common import emit_json
from bridge.config.settings import current
from bridge.errors import ConfigError
from bridge.ops import backup as backups
from bridge.ops import restore as restores

LARGE_PAGES = 16_384  # 64 MiB at the default page size: below it a copy takes a blink and shows no progress


def _progress(verb: str) -> backups.Progress:
    """A line on stderr per tenth of a large copy (stdout stays the result)."""
    shown = [0]

    def show(done: int, total: int) -> None:
        tenth = done * 10 // total if total else 10
        if total >= LARGE_PAGES and tenth > shown[0] and done < total:
            shown[0] = tenth
            click.echo(f"{verb}: {done * 100 // total}% ({done} of {total} pages)", err=True)
    return show


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _holds(contents: backups.Contents) -> str:
    return (f"{backups.counted(contents.messages, 'message', 'messages')}, "
            f"{backups.counted(contents.mail_log, 'Mail Log entry', 'Mail Log entries')}")


def _key_json() -> str:
    location = backups.key_location()
    return "secret_key setting" if location is None else str(location)


@click.command("backup")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def backup(file: Path, as_json: bool) -> None:
    """Copy the SQLite database to FILE, consistent while `serve` runs (FILE must not exist yet).

    The secret key is not in the copy: keep it apart (README, Operations -> Backups)."""
    copy = backups.take(file, progress=_progress("copied"))
    if as_json:
        emit_json({**copy.as_json(), "secret_key": _key_json(), "secret_key_in_backup": False})
        return
    click.echo(f"Backup written: {copy.path} ({_size(copy.size)}): {_holds(copy)}, schema revision {copy.revision}")
    click.echo(backups.key_reminder())


@contextmanager
def _no_serve_running() -> Iterator[None]:
    """serve's own lock on the database, held for the restore: refused while a serve runs, and none starts."""
    from bridge.ops.serve import sole_serve_of_sqlite  # serve's module loads the receiver: `backup` need not

    try:
        lock = sole_serve_of_sqlite(create_engine(current().database_url))
    except ConfigError as err:
        raise ConfigError(f"restore refused while `replybridge serve` runs on the database: stop it first ({err})"
                          ) from None
    try:
        yield
    finally:
        if lock is not None:
            lock.close()


@click.command("restore")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that holds messages, Mail Log entries or employees.")
@click.option("--json", "as_json", is_flag=True)
def restore(file: Path, force: bool, as_json: bool) -> None:
    """Replace the SQLite database with the backup FILE, then upgrade its schema if it is older.

    Refused while `serve` runs on the database, and over a database that holds data unless --force."""
    checked = restores.check_backup(file)
    with _no_serve_running():
        done = restores.restore(checked, force=force, progress=_progress("restored"))
    if as_json:
        emit_json({**done.as_json(), "secret_key": _key_json()})
        return
    now = done.contents
    upgraded = f" (upgraded from {done.from_revision})" if done.from_revision != now.revision else ""
    click.echo(f"Restored {file} into {now.path}: {_holds(now)}, schema revision {now.revision}{upgraded}")
    if done.replaced:
        click.echo(f"It replaced {done.replaced}.")
    location = backups.key_location()
    where = "the secret_key setting" if location is None else f"the key file {location}"
    click.echo(f"The stored passwords and tokens need the secret key of the installation the backup came from, "
               f"read from {where}: `replybridge doctor` checks that it decrypts them.")


COMMANDS = [backup, restore]
