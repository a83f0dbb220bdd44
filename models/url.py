"""What a database URL says, read without the ORM (the lean `ingest` start-up needs it). Which URL is
configured is a setting (bridge/config)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_URL = "sqlite:///replybridge.db"


def normalized_url(url: str) -> str:
    """The URL with psycopg 3 as the PostgreSQL driver (`postgresql://` and `postgres://` name no driver)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (`sqlite:///relative.db`, `sqlite:////absolute.db`); None for other databases
    and in-memory ones."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.split("+")[0] != "sqlite":
        return None
    path = rest.split("?", 1)[0]
    return Path(path) if path and path != ":memory:" and not path.startswith("file:") else None
