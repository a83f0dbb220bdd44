"""The ingest socket (bridge.inbound.ingest_socket and its listener) against the real receiver: exact bytes, 250
only after the commit, 451 when storage fails, and `ingest` storing in-process where nobody listens."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bridge.errors import ConfigError
from bridge.inbound import ingest_socket
from bridge.inbound.smtp_receiver import Receiver, ReceiverConfig
from models import InboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import routed
from tests.helpers.messages import candidate
from tests.helpers.ports import free_port


@pytest.fixture
def socket_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short path (a Unix socket's is limited to 107 bytes; pytest's temporary paths can be longer)."""
    with tempfile.TemporaryDirectory(prefix="rbh-", dir="/tmp") as folder:
        path = Path(folder) / "ingest"
        monkeypatch.setenv("REPLYBRIDGE_INGEST_SOCKET", str(path))
        yield path


def _receiver(b: Bridge, path: Path) -> Receiver:
    receiver = Receiver(b.engine(), ReceiverConfig(port=free_port(), ingest_path=path))
    receiver.start()
    return receiver


def stored_raws(b: Bridge) -> list[bytes]:
    with Session(b.engine()) as s:
        return list(s.exec(select(InboundMessage.raw).order_by(InboundMessage.id)))


def test_passed_on_messages_are_stored_exactly_once_and_routed(bridge: Bridge, socket_path: Path) -> None:
    # bare line feeds, a line holding one dot, no final line end: SMTP's DATA would change all three
    odd = b"From: c@cand.example\nTo: jobs+1042@example.test\nMessage-ID: <odd@cand.example>\nSubject: x\n\n.\nbye"
    raws = [odd, candidate(2)]
    receiver = _receiver(bridge, socket_path)
    try:
        assert socket_path.stat().st_mode & 0o777 == 0o600
        first = ingest_socket.pass_on(raws)
        again = ingest_socket.pass_on(raws)
        routed(bridge, 2)
    finally:
        receiver.stop()
    assert first is not None and [h.duplicate for h in first] == [False, False]
    assert again == [ingest_socket.Passed(h.id, True) for h in first]
    assert stored_raws(bridge) == raws
    assert {m["source"] for m in bridge.json("messages", "list")} == {"pipe"}
    assert not socket_path.exists()  # a stopped receiver leaves no socket behind


def test_the_ingest_command_passes_on_and_exits_75_when_storage_fails(bridge: Bridge, socket_path: Path) -> None:
    receiver = _receiver(bridge, socket_path)
    try:
        out = bridge.run("ingest", "-", stdin=candidate(1).decode()).output
        assert out.strip() == "#1 stored; the running service routes it"
        [m] = routed(bridge, 1)
        assert (m["route"], m["employee_number"]) == ("employee", 1042)
        shown = json.loads(bridge.run("ingest", "-", "--json", stdin=candidate(2).decode()).stdout)  # stored here
        assert (shown["route"], shown["employee_number"], shown["duplicate"]) == ("employee", 1042, False)
        with bridge.engine().begin() as conn:  # storage fails for real
            conn.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_away"))
        try:
            failed = bridge.run("ingest", "-", stdin=candidate(3).decode(), ok=False)
            with pytest.raises(ingest_socket.Refused):
                ingest_socket.pass_on([candidate(3)])
        finally:
            with bridge.engine().begin() as conn:
                conn.execute(text("ALTER TABLE inbound_message_away RENAME TO inbound_message"))
        assert failed.exit_code == 75 and "the running service could not store" in failed.stderr
        assert len(stored_raws(bridge)) == 2
        ingest_socket.pass_on([candidate(3)])  # the MTA's retry
    finally:
        receiver.stop()
    assert len(stored_raws(bridge)) == 3


def test_where_nobody_listens_ingest_stores_in_process(lite_bridge: Bridge, socket_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as dead:  # a socket file left by a serve that died
        dead.bind(str(socket_path))
    assert ingest_socket.pass_on([candidate(1)]) is None
    out = lite_bridge.run("ingest", "-", stdin=candidate(1).decode()).output
    assert "-> employee 1042" in out  # routed here
    receiver = _receiver(lite_bridge, socket_path)  # takes the dead serve's place
    try:
        assert ingest_socket.pass_on([candidate(1)]) == [ingest_socket.Passed(1, True)]
        with pytest.raises(ConfigError, match="another `replybridge serve` listens"):
            Receiver(lite_bridge.engine(), ReceiverConfig(port=free_port(), ingest_path=socket_path)).start()
        assert ingest_socket.pass_on([candidate(2)]) is not None  # the first one still listens
    finally:
        receiver.stop()


def test_a_bad_frame_ends_only_its_own_connection(lite_bridge: Bridge, socket_path: Path) -> None:
    receiver = _receiver(lite_bridge, socket_path)
    try:
        with socket.socket(socket.AF_UNIX) as bad:
            bad.connect(str(socket_path))
            bad.sendall(b"HELLO 12\n")
            assert bad.makefile("rb").readline().startswith(b"501 ")
        with socket.socket(socket.AF_UNIX) as cut:  # a frame promising more than it sends, then gone
            cut.connect(str(socket_path))
            cut.sendall(b"RBINGEST 1000\nFrom: x")
        assert ingest_socket.pass_on([candidate(1)]) == [ingest_socket.Passed(1, False)]
    finally:
        receiver.stop()


def test_an_mta_pipe_to_the_installed_command_is_fast_to_store(lite_bridge: Bridge, socket_path: Path) -> None:
    """The command as an MTA runs it, a process per message, passing them on to a running receiver."""
    receiver = _receiver(lite_bridge, socket_path)
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", "from bridge.cli import main; main()", "ingest", "-"],
                              input=candidate(1), capture_output=True, timeout=60)
        took = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().strip() == "#1 stored; the running service routes it"
        loaded = subprocess.run([sys.executable, "-c", "import bridge.cli.ingest_cmd, sys; print(sorted(sys.modules))"],
                                capture_output=True, text=True, timeout=60).stdout
    finally:
        receiver.stop()
    assert stored_raws(lite_bridge) == [candidate(1)]
    assert took < 30  # (speed is the benchmark's: tests/benchmarks/test_ingest_pipe.py)
    for heavy in ("sqlalchemy", "sqlmodel", "mailparser", "models.tables", "starlette", "authlib"):
        assert f"'{heavy}'" not in loaded, f"the ingest command loads {heavy}"
