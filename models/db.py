"""Engine, sessions and schema upgrades. SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0014"  # the newest migration; tests/cli/test_setup_cmds.py checks it against migrations/versions


BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk (the WAL fsynced) before it returns, so a 250 or an IMAP \Seen after it
    # survives a power cut too; group commits make that one fsync for many messages
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()


def _no_checkpoints(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")


def begin_write(connection: Connection) -> None:
    """On SQLite, take the database's one write lock now (BEGIN IMMEDIATE), trying again every fraction of a
    millisecond while another process holds it; elsewhere nothing (PostgreSQL locks rows, not the database).

    For the writes a sender waits on (the receiver's 250): SQLite's own wait sleeps 1, 2, 5, 10 ... 100 ms
    between tries, so a receiver meeting the routing process's write would sleep through most of the
    moments the lock is free. Trying this often gives those writes the lock first; others wait as before.
    """
    if connection.dialect.name != "sqlite" or connection.in_nested_transaction():
        return
    raw = connection.connection.driver_connection
    if raw.in_transaction:  # something was written already: the lock is held
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.0001
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.001)
    finally:
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def private_sqlite_file(database: str | None) -> None:
    """The database holds every candidate's mail: only its owner may read it. Created 0600 before SQLite
    opens it (SQLite gives its -wal and -shm files the database file's mode); an existing file left open to
    others is closed to them."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite names the missing directory itself
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


def make_engine(url: str, *, checkpoints: bool = True) -> Engine:
    """An engine for the URL; SQLite gets WAL and a busy timeout so workers can share it.

    `checkpoints=False`: on SQLite its commits never copy the write-ahead log back into the database
    (wal_autocheckpoint=0), for `serve`'s receiver, whose sender waits on each commit; the routing
    process, which commits after every batch it routes, does that copying instead."""
    if make_url(url).get_backend_name() == "sqlite":
        private_sqlite_file(make_url(url).database)
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                        "timeout": BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        if not checkpoints:
            event.listen(engine, "connect", _no_checkpoints)
        return engine
    return create_engine(url, pool_pre_ping=True)


@lru_cache(maxsize=1)
def shared_engine(url: str) -> Engine:
    """The process's engine for the configured URL: a command, `serve` and its pages share one pool."""
    return make_engine(url)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(engine: Engine):  # noqa: ANN201 - alembic.config.Config, imported lazily
    """Alembic is imported only where the schema changes: it costs every other command start-up time."""
    from alembic.config import Config  # only where the schema changes: it costs start-up time

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Create or upgrade the schema to the newest migration."""
    from alembic import command  # (likewise)

    command.upgrade(alembic_config(engine), "head")


def schema_is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration (commands refuse to run otherwise)."""
    with engine.connect() as conn:  # an unreachable database raises: that is not "uninitialised"
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        except SQLAlchemyError:
            return False
