"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL where it runs), the CLI in-process.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bridge.config.settings import current
from models import db
from tests.helpers.bridge import POSTGRES_URL, Bridge, make_bridge
from tests.servers.dovecot import dovecot  # noqa: F401 - fixture
from tests.servers.oauth import oauth_dovecot, oauth_server  # noqa: F401 - fixtures
from tests.servers.postgres import private_postgres  # noqa: F401 - fixture
from tests.servers.smtp_peers import smtp_peer, tls_cert  # noqa: F401 - fixtures
from tests.servers.web import browser, page, web, web_both  # noqa: F401 - fixtures


def _postgres_reason() -> str | None:
    try:
        with create_engine(POSTGRES_URL).connect() as conn:
            conn.execute(text("select 1"))
    except Exception as err:  # noqa: BLE001 - any failure means: skip, and say why
        return f"PostgreSQL not reachable at {POSTGRES_URL} ({type(err).__name__}); set REPLYBRIDGE_TEST_POSTGRES_URL"
    return None


_PG_SKIP = _postgres_reason()


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """A command run in-process (`worker`) sets the service's logging up (bridge.config.logs.configure): the
    next test would log at INFO, and pytest would keep every step line it wrote in memory."""
    root, mail = logging.getLogger(), logging.getLogger("mail.log")
    handlers, levels = list(root.handlers), (root.level, mail.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    mail.setLevel(levels[1])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/rb.db"
        return
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    schema = f"rb_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/rb.db"


def _initialised(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    b = make_bridge(url, tmp_path, monkeypatch)
    b.run("init", "--reply-address", "jobs+{number}@example.test", "--domain", "example.test")
    b.run("settings", "set", "retry_delays", "0,0")
    b.run("employee", "add", "--number", "1042", "--name", "Ana Ruiz", "--email", "ana@example.test")
    yield b
    db.shared_engine(current().database_url).dispose()  # the engine the test ended on, checked or not
    db.shared_engine.cache_clear()


@pytest.fixture
def bridge(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    """An initialised bridge with employee 1042, on SQLite and on PostgreSQL."""
    yield from _initialised(db_url, tmp_path, monkeypatch)


@pytest.fixture
def lite_bridge(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    """The same on SQLite only, for behaviour that does not depend on the database."""
    yield from _initialised(sqlite_url, tmp_path, monkeypatch)
