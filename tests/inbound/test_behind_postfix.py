"""The bridge behind a real Postfix, the two ways an admin puts it there, as the README shows them:

- relay: Postfix receives for the reply domain and relays it to the bridge's SMTP receiver
  (`relay_domains` + `transport_maps`);
- pipe: Postfix hands each message to `replybridge ingest -` through a `pipe` transport, as an
  unprivileged user (pipe refuses root).

In both, a reply to a numbered address is stored and routed by its envelope, and a temporary failure of
the bridge leaves the message in Postfix's queue, deferred with the bridge's own reason (451 4.3.0, exit 75),
until the fault is gone and the queue is flushed: then it is stored exactly once. The faults are real: a
private PostgreSQL stopped and started again, a SQLite file or a settings file the pipe's user may not
write or read, the receiver not running. A permanent refusal (552) is a bounce, not a retry.
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, text
from sqlmodel import select

import bridge
from bridge.inbound.smtp_receiver import Receiver, ReceiverConfig
from models import InboundMessage, db
from models.db import session_scope
from tests.helpers.bridge import Bridge, make_bridge
from tests.helpers.inbound import routed
from tests.helpers.messages import reply
from tests.helpers.ports import free_port
from tests.servers import postfix, postgres
from tests.servers.dovecot import _grant_traverse
from tests.servers.postfix import Postfix, Transport

pytestmark = pytest.mark.skipif(postfix.missing() is not None, reason=str(postfix.missing()))

DOMAIN = "reply.example"
NUMBERED = f"jobs+1042@{DOMAIN}"
CANDIDATE = "cand@example.org"
PIPE_USER = "nobody"  # the account `ingest` runs as; in production the service's own user
PROJECT = Path(bridge.__file__).resolve().parents[1]


def _bcc_reply(mid: str) -> bytes:
    """A reply whose headers name no numbered address (the candidate wrote Bcc): only the envelope routes it."""
    return reply(mid, f"Cand <{CANDIDATE}>", "undisclosed-recipients:;").encode()


def _on_reply_domain(b: Bridge) -> Bridge:
    b.run("settings", "set", "reply_address", "jobs+{number}@" + DOMAIN)
    return b


def _stored(b: Bridge, mid: str) -> list[InboundMessage]:
    with session_scope(b.engine()) as s:
        return list(s.exec(select(InboundMessage).where(InboundMessage.message_id == f"<{mid}>")).all())


def _count(b: Bridge) -> int:
    with session_scope(b.engine()) as s:
        return s.exec(select(func.count()).select_from(InboundMessage)).one()


@pytest.fixture
def mta(tmp_path: Path) -> Iterator[Callable[[Transport], Postfix]]:
    """Starts a private Postfix for the reply domain, handing it to the given transport; stopped afterwards."""
    started: list[Postfix] = []

    def start(transport: Transport) -> Postfix:
        server = postfix.start_postfix(tmp_path / f"postfix{len(started)}", DOMAIN, transport)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _receiver(b: Bridge, port: int | None = None, **config: int) -> Receiver:
    r = Receiver(b.engine(), ReceiverConfig(port=port or free_port(), **config))
    r.start()
    return r


def _pipe(b: Bridge, tmp_path: Path) -> Transport:
    """`replybridge ingest -` as PIPE_USER, the venv's own command, its settings in a file that
    REPLYBRIDGE_CONFIG names: the database and the key file, as the README's lines have it.

    The user may run the interpreter and read the project (search permission on the folders above them, as
    Dovecot's helper grants for its files), and owns its settings and key file. On SQLite it owns the
    database and its folder, as the service's user does.
    """
    command = Path(sys.executable).parent / "replybridge"
    for path in (Path(os.path.realpath(sys.executable)), command, PROJECT / "bridge"):
        _grant_traverse(path.parent)
    user = pwd.getpwnam(PIPE_USER)
    key = tmp_path / "pipe.key"
    key.write_text(os.environ["REPLYBRIDGE_SECRET_KEY"])
    settings = _settings_file(tmp_path)
    settings.write_text(f'database_url = "{b.url}"\nsecret_key_file = "{key}"\n')
    for path in (key, settings):
        path.chmod(0o600)
        os.chown(path, user.pw_uid, user.pw_gid)
    database = b.url.removeprefix("sqlite:///")
    if database != b.url:
        _hand_over(Path(database), user)
    return postfix.pipe_to([str(command), "ingest", "-"], PIPE_USER, {"REPLYBRIDGE_CONFIG": str(settings)})


def _settings_file(tmp_path: Path) -> Path:
    return tmp_path / "replybridge.toml"


def _hand_over(database: Path, user: pwd.struct_passwd) -> None:
    """The SQLite file, its -wal and -shm, and its folder (where SQLite makes them) to the pipe's user. This
    process, as root, keeps its connections; the files SQLite makes for it later take the database's owner."""
    _grant_traverse(database.parent)
    for path in (database.parent, *database.parent.glob(database.name + "*")):
        os.chown(path, user.pw_uid, user.pw_gid)


def _assert_once_after_a_retry(b: Bridge, server: Postfix, queue_id: str, mid: str, total: int = 1) -> InboundMessage:
    """Delivered after the flush, stored once, routed by the envelope; Postfix logged a deferral, then success."""
    server.flush()
    server.wait_queue_empty()
    [row] = _stored(b, mid)
    assert _count(b) == total
    statuses = server.wait_for(lambda: server.statuses(queue_id)[-1:] == ["sent"] and server.statuses(queue_id),
                               10, f"{queue_id}'s delivery to be logged")
    assert statuses[0] == "deferred" and "bounced" not in statuses, server.log()
    m = next(m for m in routed(b, total) if m["id"] == row.id)
    assert (m["route"], m["employee_number"], m["rule"]) == ("employee", 1042, "numbered")
    return row


# Mode A: relay to the SMTP receiver ---------------------------------------------------------------------------


def test_relay_delivers_a_reply_routed_by_its_envelope(bridge: Bridge, mta: Callable[[Transport], Postfix]) -> None:
    receiver = _receiver(_on_reply_domain(bridge))
    try:
        server = mta(postfix.relay_to(receiver.port))
        queue_id = server.send(_bcc_reply("relay@cand.example"), CANDIDATE, [NUMBERED])
        server.wait_queue_empty()
        [m] = routed(bridge, 1)
    finally:
        receiver.stop()
    assert (m["source"], m["route"], m["employee_number"]) == ("smtp", "employee", 1042)
    assert m["reason"] == f"envelope {NUMBERED} is employee 1042's numbered address"
    [row] = _stored(bridge, "relay@cand.example")
    assert (row.envelope_from, row.envelope_to) == (CANDIDATE, f'["{NUMBERED}"]')
    assert row.raw.startswith(b"Received: from ") and b"by mx.reply.example (Postfix)" in row.raw
    assert server.statuses(queue_id) == ["sent"]


def test_relay_keeps_the_message_queued_while_postgresql_is_down(
        private_postgres: postgres.Postgres, pg_bridge: Bridge, mta: Callable[[Transport], Postfix]) -> None:
    b = pg_bridge
    receiver = _receiver(b)
    try:
        server = mta(postfix.relay_to(receiver.port))
        server.send(_bcc_reply("before@cand.example"), CANDIDATE, [NUMBERED])
        routed(b, 1)  # the receiver has read its domains (RCPT is answered without the database) and routed it
        private_postgres.stop("fast")
        queue_id = server.send(_bcc_reply("pg-down@cand.example"), CANDIDATE, [NUMBERED])
        [recipient] = server.wait_deferred(queue_id)["recipients"]
        assert recipient["delay_reason"] == ("host 127.0.0.1[127.0.0.1] said: 451 4.3.0 Temporary storage failure, "
                                             "try again later (in reply to end of DATA command)"), recipient
        private_postgres.start()
        row = _assert_once_after_a_retry(b, server, queue_id, "pg-down@cand.example", total=2)
    finally:
        receiver.stop()
    assert row.envelope_to == f'["{NUMBERED}"]'


def test_relay_keeps_the_message_queued_while_the_bridge_is_not_running(
        lite_bridge: Bridge, mta: Callable[[Transport], Postfix]) -> None:
    port = free_port()
    server = mta(postfix.relay_to(port))
    queue_id = server.send(_bcc_reply("not-running@cand.example"), CANDIDATE, [NUMBERED])
    [recipient] = server.wait_deferred(queue_id)["recipients"]
    assert recipient["delay_reason"] == f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    receiver = _receiver(_on_reply_domain(lite_bridge), port)
    try:
        _assert_once_after_a_retry(lite_bridge, server, queue_id, "not-running@cand.example")
    finally:
        receiver.stop()


def test_relay_bounces_what_the_bridge_refuses_for_good(lite_bridge: Bridge,
                                                        mta: Callable[[Transport], Postfix]) -> None:
    """A permanent refusal (552 at the end of DATA: a header block over the cap) is returned to the sender at
    once, never retried."""
    receiver = _receiver(_on_reply_domain(lite_bridge), max_header_bytes=2_000)
    try:
        server = mta(postfix.relay_to(receiver.port))
        padding = "".join(f"X-Pad-{n}: {'y' * 70}\r\n" for n in range(40))
        queue_id = server.send(reply("big@cand.example", CANDIDATE, NUMBERED, extra=padding).encode(), CANDIDATE,
                               [NUMBERED])
        statuses = server.wait_for(lambda: server.statuses(queue_id), 20, f"{queue_id}'s delivery attempt")
    finally:
        receiver.stop()
    assert statuses == ["bounced"], server.log()
    assert "said: 552 5.3.4 Message header too large (in reply to end of DATA command)" in server.log()
    assert _count(lite_bridge) == 0


# Mode B: pipe to `replybridge ingest` -------------------------------------------------------------------------


def test_pipe_delivers_a_reply_routed_by_its_envelope(bridge: Bridge, tmp_path: Path,
                                                      mta: Callable[[Transport], Postfix]) -> None:
    server = mta(_pipe(_on_reply_domain(bridge), tmp_path))
    queue_id = server.send(_bcc_reply("pipe@cand.example"), CANDIDATE, [NUMBERED])
    server.wait_queue_empty()
    assert server.wait_for(lambda: server.statuses(queue_id), 10, "the delivery to be logged") == ["sent"]
    [m] = routed(bridge, 1)
    assert (m["source"], m["route"], m["employee_number"]) == ("pipe", "employee", 1042)
    assert m["reason"] == f"X-Original-To {NUMBERED} is employee 1042's numbered address"
    [row] = _stored(bridge, "pipe@cand.example")
    # the envelope comes in the headers the pipe adds: Return-Path (sender), X-Original-To (recipient)
    assert row.raw.startswith(f"Return-Path: <{CANDIDATE}>\nX-Original-To: {NUMBERED}\n".encode()), row.raw[:200]


def test_pipe_keeps_the_message_queued_while_postgresql_is_down(
        private_postgres: postgres.Postgres, pg_bridge: Bridge, tmp_path: Path,
        mta: Callable[[Transport], Postfix]) -> None:
    b = pg_bridge
    server = mta(_pipe(b, tmp_path))
    private_postgres.stop("fast")
    queue_id = server.send(_bcc_reply("pipe-pg-down@cand.example"), CANDIDATE, [NUMBERED])
    [recipient] = server.wait_deferred(queue_id)["recipients"]
    _assert_exit_75(recipient["delay_reason"])
    private_postgres.start()
    _assert_once_after_a_retry(b, server, queue_id, "pipe-pg-down@cand.example")


def test_pipe_keeps_the_message_queued_while_sqlite_is_unwritable(lite_bridge: Bridge, tmp_path: Path,
                                                                   mta: Callable[[Transport], Postfix]) -> None:
    server = mta(_pipe(_on_reply_domain(lite_bridge), tmp_path))
    database = Path(lite_bridge.url.removeprefix("sqlite:///"))
    database.chmod(0o400)  # its owner, the pipe's user, may read it but not write
    queue_id = server.send(_bcc_reply("read-only@cand.example"), CANDIDATE, [NUMBERED])
    [recipient] = server.wait_deferred(queue_id)["recipients"]
    _assert_exit_75(recipient["delay_reason"])
    database.chmod(0o600)
    _assert_once_after_a_retry(lite_bridge, server, queue_id, "read-only@cand.example")


def test_pipe_keeps_the_message_queued_while_its_settings_are_unreadable(
        lite_bridge: Bridge, tmp_path: Path, mta: Callable[[Transport], Postfix]) -> None:
    """A settings file the pipe's user may not read (a deployment's mistake) is no reason to return a reply."""
    server = mta(_pipe(_on_reply_domain(lite_bridge), tmp_path))
    _settings_file(tmp_path).chmod(0)
    queue_id = server.send(_bcc_reply("no-settings@cand.example"), CANDIDATE, [NUMBERED])
    [recipient] = server.wait_deferred(queue_id)["recipients"]
    assert "cannot read the settings file" in recipient["delay_reason"], recipient
    _assert_exit_75(recipient["delay_reason"])
    _settings_file(tmp_path).chmod(0o600)
    _assert_once_after_a_retry(lite_bridge, server, queue_id, "no-settings@cand.example")


def _assert_exit_75(reason: str) -> None:
    """Postfix's words for exit 75 (EX_TEMPFAIL), then what `ingest` printed."""
    assert reason.startswith("temporary failure. Command output: error: "), reason
    assert reason.endswith("exit 75 so the sender tries again"), reason


# A private PostgreSQL, stopped and started by the tests --------------------------------------------------------


@pytest.fixture(scope="module")
def module_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[postgres.Postgres]:
    reason = postgres.missing()
    if reason:
        pytest.skip(reason)
    server = postgres.start_postgres(tmp_path_factory.mktemp("pg"))
    yield server
    if server.running():
        server.stop("immediate")


@pytest.fixture
def private_postgres(module_postgres: postgres.Postgres) -> postgres.Postgres:
    """The module's private PostgreSQL, running (a failed test may have left it stopped)."""
    if not module_postgres.running():
        module_postgres.start()
    return module_postgres


def _fresh_schema(server: postgres.Postgres) -> str:
    """A URL to an empty schema of its own on the private server."""
    schema = f"rb_{os.urandom(6).hex()}"
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return f"{server.url}?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_bridge(private_postgres: postgres.Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bridge]:
    """A bridge on a schema of its own on the private PostgreSQL, replies to the reply domain."""
    b = make_bridge(_fresh_schema(private_postgres), tmp_path, monkeypatch)
    b.run("init", "--reply-address", "jobs+{number}@" + DOMAIN, "--domain", DOMAIN)
    b.run("employee", "add", "--number", "1042", "--name", "Ana Ruiz", "--email", "ana@example.test",
          "--delivery", "none")
    yield b
    if not private_postgres.running():  # a test that failed with the server stopped
        private_postgres.start()
    b.engine().dispose()
    db.shared_engine.cache_clear()
