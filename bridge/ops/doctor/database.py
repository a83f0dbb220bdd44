"""The database: there, reachable, and its schema at this version's revision (else `replybridge init`)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge.config.settings import current, masked_url
from bridge.ops.backup import revision_problem
from bridge.ops.doctor import Finding, fail, ok
from models.db import HEAD, shared_engine
from models.url import sqlite_file

CHECK = "database"


def reach() -> tuple[Finding, Engine | None]:
    """The finding, and the engine when the other checks can read through it (reachable, schema at HEAD)."""
    url = current().database_url
    shown = masked_url(url)
    path = sqlite_file(url)
    if path is not None and not path.is_file():  # an engine would create an empty database there
        return fail(CHECK, f"there is no database file at {path.resolve()}",
                    "point the database_url setting at the database (`replybridge config show`), restore one "
                    "(`replybridge restore FILE`), or create it with `replybridge init`"), None
    engine = shared_engine(url)
    try:
        revision = _revision(engine)
    except SQLAlchemyError as err:
        detail = str(getattr(err, "orig", None) or type(err).__name__).splitlines()[0]
        return fail(CHECK, f"{shown} cannot be reached: {detail}",
                    "check the database_url setting (`replybridge config show`) and that the database server "
                    "runs and lets this user in"), None
    problem = revision_problem(revision)
    if problem is None:
        return ok(CHECK, f"{shown} answers; its schema is at revision {HEAD}, this version's"), engine
    return fail(CHECK, f"{shown}: {problem}", _fix(revision)), None


def _revision(engine: Engine) -> str | None:
    """The schema revision; None where there is none (not initialised). Raises when the database cannot be reached."""
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            return None


def _fix(revision: str | None) -> str:
    if revision is None:
        return "run `replybridge init` (it creates the tables and the key file)"
    if revision.isdigit() and int(revision) < int(HEAD):
        return "run `replybridge init`: it upgrades the schema (take a backup first: `replybridge backup FILE`)"
    return "run the replybridge version that made this database, or a newer one"
