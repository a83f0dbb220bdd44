"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL where it runs), the CLI in-process."""

from __future__ import annotations

import json
import os
import secrets
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bridge.cli import cli
from bridge.cli import common as cli_common
from models import db
from tests.servers.dovecot import dovecot  # noqa: F401 - fixture
from tests.servers.oauth import oauth_dovecot, oauth_server  # noqa: F401 - fixtures
from tests.servers.smtp_peers import smtp_peer, tls_cert  # noqa: F401 - fixtures
from tests.servers.web import browser, page, web, web_both  # noqa: F401 - fixtures

POSTGRES_URL = os.environ.get("REPLYBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def _postgres_reason() -> str | None:
    try:
        with create_engine(POSTGRES_URL).connect() as conn:
            conn.execute(text("select 1"))
    except Exception as err:  # noqa: BLE001 - any failure means: skip, and say why
        return f"PostgreSQL not reachable at {POSTGRES_URL} ({type(err).__name__}); set REPLYBRIDGE_TEST_POSTGRES_URL"
    return None


_PG_SKIP = _postgres_reason()


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


@dataclass
class Bridge:
    """The CLI against one database, run in-process (the contract check runs it as a subprocess)."""

    url: str
    runner: CliRunner

    def run(self, *args: str, ok: bool = True, stdin: str | None = None) -> Result:
        result = self.runner.invoke(cli, list(args), input=stdin, catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(f"replybridge {shlex.join(args)} exited {result.exit_code}:\n{result.output}"
                                 f"{result.stderr}")
        return result

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args, "--json").stdout)

    def engine(self) -> Engine:
        return cli_common.engine()


def _bridge(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bridge:
    monkeypatch.setenv("REPLYBRIDGE_DATABASE_URL", url)
    monkeypatch.setenv("REPLYBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    monkeypatch.chdir(tmp_path)
    db.shared_engine.cache_clear()
    return Bridge(url, CliRunner())


def _initialised(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    b = _bridge(url, tmp_path, monkeypatch)
    b.run("init", "--reply-address", "jobs+{number}@example.test", "--domain", "example.test")
    b.run("settings", "set", "retry_delays", "0,0")
    b.run("employee", "add", "--number", "1042", "--name", "Ana Ruiz", "--email", "ana@example.test")
    yield b
    db.shared_engine().dispose()
    db.shared_engine.cache_clear()


@pytest.fixture
def bridge(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    """An initialised bridge with employee 1042, on SQLite and on PostgreSQL."""
    yield from _initialised(db_url, tmp_path, monkeypatch)


@pytest.fixture
def lite_bridge(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    """The same on SQLite only, for behaviour that does not depend on the database."""
    yield from _initialised(sqlite_url, tmp_path, monkeypatch)
