"""/readyz against a real `serve`: ready when all is well, and 503 naming each part that is not, as an admin
meets it: the database stopped, the SMTP receiver not greeting, a poll folder whose IMAP server stopped or
whose lease a dead `serve` holds, a worker run hanging on a server that never answers.

No session: a probe asks without signing in.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from models import ImapFolderState
from models.db import session_scope
from tests.helpers.bridge import Bridge, make_bridge
from tests.helpers.setup_steps import add_account, add_alias, add_poller, send
from tests.servers import postgres
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot
from tests.servers.web import Served, start_serve, stop_serve

ALL_OK = {"database": "ok", "receiver": "ok", "poll_folders": "ok", "worker": "ok"}
needs_dovecot = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")


def _readyz(served: Served) -> tuple[int, dict]:
    answer = httpx.get(f"{served.base_url}/readyz", timeout=10)
    return answer.status_code, answer.json()


def _until(served: Served, code: int, timeout: float = 30) -> dict:
    """/readyz's body once it answers `code`."""
    def answered() -> dict | None:
        status, body = _readyz(served)
        return body if status == code else None
    return served.wait_for(answered, timeout=timeout, what=f"/readyz to answer {code}")


@needs_dovecot
def test_ready_until_the_imap_server_of_a_poll_folder_stops(bridge: Bridge, dovecot: Dovecot, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    add_poller(bridge, dovecot, monkeypatch)
    served = start_serve(bridge, tmp_path)
    try:
        assert _until(served, 200) == {"status": "ready", "checks": ALL_OK}  # once its watcher holds the folder
        dovecot.stop()
        body = _until(served, 503)
    finally:
        stop_serve(served)
    assert body["checks"] == {**ALL_OK, "poll_folders": "failing"}
    [problem] = body["problems"]
    assert problem.startswith(f"IMAP server 'catchall' (localhost:{dovecot.port}), folder 'INBOX': its last poll "
                              "failed: "), problem


def _held_by(b: Bridge, pid: int) -> bool:
    with session_scope(b.engine()) as s:
        owner = s.exec(select(ImapFolderState.lease_owner)).first()
    return owner is not None and f":{pid}:" in owner


@needs_dovecot
def test_a_poll_folder_whose_lease_a_dead_serve_holds_is_named(bridge: Bridge, dovecot: Dovecot, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    add_poller(bridge, dovecot, monkeypatch)
    first = start_serve(bridge, tmp_path)
    try:
        first.wait_for(lambda: _held_by(bridge, first.proc.pid), what="the first serve to hold the folder")
    finally:
        os.killpg(first.proc.pid, signal.SIGKILL)  # a crash: its lease stays until it runs out (40 s)
        first.proc.wait()
    second = start_serve(bridge, tmp_path)
    try:
        status, body = _readyz(second)
    finally:
        stop_serve(second)
    assert status == 503 and body["checks"] == {**ALL_OK, "poll_folders": "failing"}, body
    [problem] = body["problems"]
    assert problem.startswith(f"IMAP server 'catchall' (localhost:{dovecot.port}), folder 'INBOX': its lease names "
                              f"process {first.proc.pid} on {socket.gethostname()}, which is not running; a live "
                              "poller takes it over once the lease runs out at "), problem


def test_a_receiver_that_does_not_greet_is_named(lite_bridge: Bridge, tmp_path: Path) -> None:
    """The receiver runs in serve's first process, the pages in another: with the first stopped (SIGSTOP),
    the SMTP port still accepts connections (the kernel does) but nobody greets."""
    served = start_serve(lite_bridge, tmp_path)
    try:
        assert _until(served, 200)["checks"] == ALL_OK
        os.kill(served.proc.pid, signal.SIGSTOP)
        try:
            status, body = _readyz(served)
        finally:
            os.kill(served.proc.pid, signal.SIGCONT)
        assert status == 503 and body["checks"] == {**ALL_OK, "receiver": "failing"}, body
        assert body["problems"] == [f"the SMTP receiver on 127.0.0.1:{served.smtp_port} does not greet within 2 s: "
                                    "mail sent to it waits; see serve's log"]
        assert _until(served, 200)["checks"] == ALL_OK
    finally:
        stop_serve(served)


def test_a_worker_run_that_hangs_is_named_until_it_ends(lite_bridge: Bridge, smtp_peer, tmp_path: Path,  # noqa: ANN001
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An SMTP server that accepts the connection and never greets holds the worker's run for the account's
    timeout (30 s); once it goes away the run ends, and so does the problem."""
    silent = smtp_peer("silent")
    add_account(lite_bridge, silent.host, silent.port, monkeypatch, timeout=30)
    add_alias(lite_bridge)
    send(lite_bridge)
    served = start_serve(lite_bridge, tmp_path, {"REPLYBRIDGE_WORKER_OVERDUE_AFTER": "3"})
    try:
        body = _until(served, 503)
        assert silent.connections == 1  # the run is waiting on it
        assert body["checks"] == {**ALL_OK, "worker": "failing"}, body
        [problem] = body["problems"]
        assert problem.startswith("the worker has not finished a run since its schedule began ") and problem.endswith(
            " s ago (it runs every 0.3 s; overdue after 3 s): a run may hang on a server that does not answer; see "
            "serve's log"), problem
        silent.stop()  # the server goes away: the send fails, and the run ends
        assert _until(served, 200)["checks"] == ALL_OK
    finally:
        stop_serve(served)


@pytest.mark.postgres
def test_a_stopped_database_is_named_with_its_password_masked(private_postgres: postgres.Postgres, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # the private server trusts every local connection: the password in the URL is only there to be masked
    url = private_postgres.url.replace("postgres@", "postgres:Not-Shown-42@")
    b = make_bridge(url, tmp_path, monkeypatch)
    b.run("init", "--reply-address", "jobs+{number}@example.test", "--domain", "example.test")
    served = start_serve(b, tmp_path)
    try:
        assert _until(served, 200)["checks"] == ALL_OK
        private_postgres.stop("fast")
        answer = httpx.get(f"{served.base_url}/readyz", timeout=10)
        private_postgres.start()
        assert _until(served, 200)["checks"] == ALL_OK  # back by itself
    finally:
        stop_serve(served)
        b.engine().dispose()
    assert answer.status_code == 503 and "Not-Shown-42" not in answer.text
    body = answer.json()
    assert body["checks"] == {**ALL_OK, "database": "failing",
                              "poll_folders": "not checked: the database does not answer"}, body
    [problem] = body["problems"]
    assert problem.startswith(f"the database does not answer (postgresql+psycopg://postgres:***@127.0.0.1:"
                              f"{private_postgres.port}/postgres): "), problem
    assert problem.endswith("Is its server running and reachable, and is the database_url setting right?")
