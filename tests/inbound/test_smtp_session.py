"""The bulk DATA reader against aiosmtpd's own, over real sockets: the same bytes kept, the same answers.

Each case is sent raw (no smtplib, which would fix line ends and stuff dots itself) to a stock aiosmtpd
server and to one with ReceiverSession, in pieces that split the end marker and dot-stuffed lines
anywhere; both must keep the same content and answer the same codes, and the session must stay in
step for the next message.
"""

from __future__ import annotations

import random
import socket
import zlib
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from bridge.inbound.smtp_session import ReceiverSession
from tests.helpers.ports import free_port

LIMIT = 20_000


class Keep:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd hook
        self.got.append(envelope.original_content)
        return "250 kept"


class BulkController(Controller):
    def factory(self) -> SMTP:
        return ReceiverSession(self.handler, **self.SMTP_kwargs)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, tuple[Controller, Keep]]]:
    made = {}
    for name, cls in (("stock", Controller), ("bulk", BulkController)):
        keep = Keep()
        controller = cls(keep, hostname="127.0.0.1", port=free_port(), data_size_limit=LIMIT)
        controller.start()
        made[name] = (controller, keep)
    yield made
    for controller, _keep in made.values():
        controller.stop()


def exchange(controller: Controller, body: bytes, pieces: int, seed: int) -> list[bytes]:
    """Send one message raw, split into `pieces` writes at random points, then a second one: the answers."""
    rng = random.Random(seed)
    data = body + b".\r\n"
    cuts = sorted(rng.sample(range(1, len(data)), min(pieces, len(data) - 1)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    answers = []
    with socket.create_connection((controller.hostname, controller.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        answers.append(reader.readline())
        for command in (b"EHLO t\r\n", b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.test>\r\n",
                        b"DATA\r\n"):
            sock.sendall(command)
            answers.append(_reply(reader))
        for chunk in chunks:
            sock.sendall(chunk)
        answers.append(_reply(reader))
        for command in (b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.test>\r\n", b"DATA\r\n",
                        b"after\r\n.\r\n", b"QUIT\r\n"):
            sock.sendall(command)
            answers.append(_reply(reader))
    return answers


def _reply(reader) -> bytes:  # noqa: ANN001 - a socket file
    lines = [reader.readline()]
    while lines[-1][3:4] == b"-":
        lines.append(reader.readline())
    return lines[-1][:3]


CASES = {
    "plain": b"Subject: hi\r\n\r\nHello.\r\nThanks.\r\n",
    "empty": b"",
    "one line": b"x\r\n",
    "stuffed dots": b"Subject: d\r\n\r\n..leading dot\r\n...two\r\n..\r\n.x\r\nend.\r\n",
    "line of a dot and more": b"a\r\n. \r\n.\r\r\nb.\r\n",
    "bare line feeds": b"Subject: lf\n\nline\n.\nnot the end\n.\r\nstill\r\n",
    "bare carriage returns": b"a\rb\r\n\r.\r\n",
    "8-bit": "Subject: é\r\n\r\nß. ü.\r\n".encode() + b"\xff\xfe.\r\n",
    "longest line aiosmtpd takes": b"a" * 999 + b"\r\n",
    "line too long": b"a" * 1000 + b"\r\n",
    "long line ending in a dot": b"b" * 1200 + b".\r\n",
    "exactly the limit": (b"y" * 98 + b"\r\n") * (LIMIT // 100),
    "one octet over the limit": (b"y" * 98 + b"\r\n") * (LIMIT // 100 - 1) + b"y" * 99 + b"\r\n",
    "far over the limit": (b"z." * 49 + b"\r\n") * (3 * LIMIT // 100),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("pieces", [1, 7, 60])
def test_same_content_and_answers_as_aiosmtpd(servers: dict[str, tuple[Controller, Keep]], name: str,
                                              pieces: int) -> None:
    body = CASES[name]
    results = {}
    for server, (controller, keep) in servers.items():
        keep.got.clear()
        answers = exchange(controller, body, pieces, seed=zlib.crc32(f"{name} {pieces}".encode()))
        results[server] = (answers, list(keep.got))
    assert results["bulk"] == results["stock"]
    answers, kept = results["bulk"]
    assert answers[-1] == b"221" and answers[-2] == b"250"  # the session stayed in step for the next message
    assert kept[-1] == b"after\r\n"


def test_the_content_is_what_was_meant() -> None:
    """Not only equal to aiosmtpd's: dot-stuffing undone, everything else byte for byte."""
    controller = BulkController(keep := Keep(), hostname="127.0.0.1", port=free_port(), data_size_limit=LIMIT)
    controller.start()
    try:
        exchange(controller, CASES["stuffed dots"], 5, seed=1)
        exchange(controller, CASES["bare line feeds"], 5, seed=2)
    finally:
        controller.stop()
    assert keep.got[0] == b"Subject: d\r\n\r\n.leading dot\r\n..two\r\n.\r\nx\r\nend.\r\n"
    assert keep.got[2] == CASES["bare line feeds"]


ADDRESS_ARGS = [
    "<cand@example.org>", "<cand@example.org> SIZE=1024", " <a.b+c@mail.example.org>\tBODY=8BITMIME SMTPUTF8",
    "<a@b>", "<a@b>  ", "<a@b>x", "<first.last@[192.0.2.1]>", "<\"quoted name\"@example.org>",
    "<a..b@example.org>", "<.a@example.org>", "<a@example.org.>", "<a@-x.example>", "<>", "<> SIZE=10",
    "cand@example.org", "cand@example.org SIZE=3", "<cand@example.org> (comment) SIZE=1",
    "<@relay.example:cand@example.org>", "<cand@example.org", "cand@", "<ü@example.org>", "<a@exämple.org>",
    "<{weird}|'#$%&*/=?^`~!@example.org>", "<" + "l" * 70 + "@example.org>", "<a@b> \r\n",
]


@pytest.mark.parametrize("arg", ADDRESS_ARGS)
def test_addresses_read_as_aiosmtpd_reads_them(arg: str) -> None:
    stock, ours = SMTP(Keep()), ReceiverSession(Keep())
    for limit in (64, 0):
        ours.local_part_limit = stock.local_part_limit = limit
        assert _outcome(ours._getaddr, arg) == _outcome(stock._getaddr, arg)


def _outcome(read, arg: str) -> object:  # noqa: ANN001 - a bound _getaddr
    try:
        return read(arg)
    except Exception as err:  # noqa: BLE001 - aiosmtpd's parser raises on some addresses ("cand@"): so must ours
        return type(err)
