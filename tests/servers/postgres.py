"""A private PostgreSQL for fault tests: its own data directory and loopback port, stopped and started at will.

The machine's shared PostgreSQL serves every other test; restarting it would disturb them, so a test that
restarts the database (`tests/ops/test_faults.py`) runs its own server from the same Debian binaries.
initdb and the server refuse to run as root: both run as the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.dovecot import _grant_traverse
from tests.servers.web import free_port

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
RUN_AS = "postgres"


def missing() -> str | None:
    """Why a private PostgreSQL cannot start here, or None."""
    if not BIN_DIRS or not (BIN_DIRS[0] / "initdb").exists():
        return "PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin)"
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        return f"no {RUN_AS!r} user to run a private PostgreSQL as"
    if shutil.which("runuser") is None or os.geteuid() != 0:
        return "a private PostgreSQL needs root (runuser) to start as the postgres user"
    return None


@dataclass
class Postgres:
    """A running private server: `url` for SQLAlchemy; `stop()` and `start()` restart it on the same port."""

    data: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", RUN_AS, "--", str(BIN_DIRS[0] / "pg_ctl"), "-D", str(self.data), *args],
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._ctl("-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: the server ends every session and shuts down cleanly; `immediate`: as after a crash."""
        self._ctl("-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


def start_postgres(root: Path) -> Postgres:
    root.mkdir(parents=True, exist_ok=True)
    _grant_traverse(root)
    data = root / "pgdata"
    data.mkdir()
    owner = pwd.getpwnam(RUN_AS)
    os.chown(root, owner.pw_uid, owner.pw_gid)
    os.chown(data, owner.pw_uid, owner.pw_gid)
    subprocess.run(["runuser", "-u", RUN_AS, "--", str(BIN_DIRS[0] / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres", "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
    server = Postgres(data, free_port(), root / "postgres.log")
    server.start()
    return server


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[Postgres]:
    """A private PostgreSQL for one test (skipped with the reason where none can start), stopped after it."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    server = start_postgres(tmp_path / "pg")
    yield server
    if server.running():
        server.stop("immediate")
