"""Where the database is: REPLYBRIDGE_DATABASE_URL, read without the ORM (the lean `ingest` start-up needs it)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URL = "sqlite:///replybridge.db"


def database_url() -> str:
    """The database URL from REPLYBRIDGE_DATABASE_URL; psycopg 3 is the PostgreSQL driver."""
    url = os.environ.get("REPLYBRIDGE_DATABASE_URL") or DEFAULT_URL
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (`sqlite:///relative.db`, `sqlite:////absolute.db`); None for other databases
    and in-memory ones."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite":
        return None
    path = rest.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" and not path.startswith("file:") else None
