"""A bridge on a fresh database, driven through its CLI in-process, as the tests' fixtures make it."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from bridge.cli import cli
from bridge.cli import common as cli_common
from models import db

POSTGRES_URL = os.environ.get("REPLYBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


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


def make_bridge(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bridge:
    """A bridge on `url` with a fresh secret key, working in tmp_path (not initialised: run `init`)."""
    monkeypatch.setenv("REPLYBRIDGE_DATABASE_URL", url)
    monkeypatch.setenv("REPLYBRIDGE_SECRET_KEY", Fernet.generate_key().decode())
    # no ingest socket unless a test asks for one: whether the default socket beside the database could be
    # made would otherwise depend on the length of pytest's temporary path (bridge.inbound.ingest_socket)
    monkeypatch.setenv("REPLYBRIDGE_INGEST_SOCKET", "")
    monkeypatch.chdir(tmp_path)
    db.shared_engine.cache_clear()
    return Bridge(url, CliRunner())
