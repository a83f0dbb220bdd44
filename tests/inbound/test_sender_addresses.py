"""The sender is the addr-spec of the raw From header, read before any display name is decoded: what mail
clients show and DMARC checks. An encoded-word that decodes to an address, a comma or angle brackets
cannot make a stranger a known candidate."""

from __future__ import annotations

import json

import pytest

from bridge.inbound.parse import parse
from tests.helpers.bridge import Bridge
from tests.helpers.setup_steps import send

DAVE = "dave@cand.example.org"


def message(from_header: str, to: str = "careers@example.test", mid: str = "s1") -> bytes:
    return (f"From: {from_header}\r\nTo: {to}\r\nSubject: Re: Interview\r\nMessage-ID: <{mid}@evil.example>\r\n"
            "\r\nHello\r\n").encode()


@pytest.mark.parametrize(("header", "addr", "name"), [
    # "dave@cand.example.org," as an encoded display name
    ("=?utf-8?b?ZGF2ZUBjYW5kLmV4YW1wbGUub3JnLA==?= <attacker@evil.example>", "attacker@evil.example",
     "dave@cand.example.org,"),
    # "<dave@cand.example.org>" as an encoded display name
    ("=?utf-8?b?PGRhdmVAY2FuZC5leGFtcGxlLm9yZz4=?= <attacker@evil.example>", "attacker@evil.example",
     "<dave@cand.example.org>"),
    # a quoted display name that looks like an address
    ('"dave@cand.example.org" <attacker@evil.example>', "attacker@evil.example", "dave@cand.example.org"),
    # quotes inside an encoded display name
    ('=?utf-8?q?=22Dave=22_Jones?= <attacker@evil.example>', "attacker@evil.example", '"Dave" Jones'),
    # several addresses: the first is the sender
    ("attacker@evil.example, Dave <dave@cand.example.org>", "attacker@evil.example", None),
    # group syntax
    ("Friends: attacker@evil.example, dave@cand.example.org;", "attacker@evil.example", None),
    # an honest non-ASCII name still reads as text
    ("=?utf-8?q?Jos=C3=A9_P=C3=A9rez?= <jose@cand.example.org>", "jose@cand.example.org", "José Pérez"),
])
def test_the_sender_is_the_addr_spec_of_the_raw_header(header: str, addr: str, name: str | None) -> None:
    parsed = parse(message(header))
    assert (parsed.from_addr, parsed.from_name) == (addr, name)


def test_an_encoded_recipient_in_a_display_name_is_not_a_numbered_address(lite_bridge: Bridge) -> None:
    # "<jobs+1042@example.test>," as the encoded display name of a stranger's address in To
    to = "=?utf-8?b?PGpvYnMrMTA0MkBleGFtcGxlLnRlc3Q+LA==?= <careers@example.test>"
    [shown] = _ingest(lite_bridge, message("Eve <eve@evil.example>", to=to))
    assert (shown["route"], shown["employee_number"]) == ("unassigned", None)


def test_a_spoofed_display_name_is_not_routed_as_a_known_candidate(lite_bridge: Bridge) -> None:
    send(lite_bridge, to=DAVE)  # Dave is Ana's candidate now
    honest = _ingest(lite_bridge, message(f"Dave <{DAVE}>", mid="honest"))[0]
    assert (honest["route"], honest["rule"], honest["employee_number"]) == ("employee", "known_sender", 1042)
    spoofed = _ingest(lite_bridge, message("=?utf-8?b?ZGF2ZUBjYW5kLmV4YW1wbGUub3JnLA==?= <attacker@evil.example>",
                                           mid="spoofed"))[0]
    assert (spoofed["from"], spoofed["route"], spoofed["employee_number"]) == ("attacker@evil.example",
                                                                              "unassigned", None)


def _ingest(b: Bridge, raw: bytes) -> list[dict]:
    shown = json.loads(b.run("ingest", "-", "--json", stdin=raw.decode()).stdout)
    return shown if isinstance(shown, list) else [shown]
