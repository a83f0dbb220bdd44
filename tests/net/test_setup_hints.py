"""Set-up that explains itself: pasted app passwords, host:port, the other protocol's host or port.

Pure rules first, then the same through `smtp add` / `imap add` on a real database (and a real SMTP
peer where the stored value has to work against a server).
"""

from __future__ import annotations

import pytest
from sqlmodel import Session

from bridge import crypto
from bridge.accounts import imap_servers, servers, smtp_accounts
from bridge.errors import FieldError, InputError
from bridge.net.setup_hints import allow_list_hint, app_password, split_host_port, wrong_protocol
from tests.helpers.bridge import Bridge
from tests.helpers.setup_steps import add_alias

SPACED = "abcd efgh ijkl mnop"


# --- pure rules ---------------------------------------------------------------------------------------

def test_app_password_in_four_groups_loses_its_spaces_with_a_note() -> None:
    password, note = app_password(SPACED)
    assert password == "abcdefghijklmnop"
    assert note and "without its spaces" in note and SPACED not in note and password not in note


@pytest.mark.parametrize("typed", [
    "abcd efgh ijkl", "abcd efgh ijkl mnop qrst", "abcd  efgh ijkl mnop", "abc1 efgh ijkl mnop",
    " abcd efgh ijkl mnop", "correct horse battery staple", "abcdefghijklmnop",
])
def test_other_passwords_are_kept_as_typed(typed: str) -> None:
    assert app_password(typed) == (typed, None)


@pytest.mark.parametrize("host, port, expected", [
    ("smtp.example.com:587", None, ("smtp.example.com", 587)),
    ("smtp.example.com:587", 587, ("smtp.example.com", 587)),
    (" smtp.example.com ", 25, ("smtp.example.com", 25)),
    ("[::1]:25", None, ("::1", 25)),
    ("[2001:db8::5]", 465, ("2001:db8::5", 465)),
    ("2001:db8::5", 465, ("2001:db8::5", 465)),
    ("smtp.example.com", None, ("smtp.example.com", None)),
])
def test_host_port_is_split(host: str, port: int | None, expected: tuple[str, int | None]) -> None:
    assert split_host_port(host, port) == expected


@pytest.mark.parametrize("host, port, words", [
    ("smtp.example.com:587", 25, "other than --port 25"),
    ("[::1]:25", 587, "other than --port 587"),
    ("smtp.example.com:smtp", None, "not a port"),
    ("[not-v6]:25", None, "not a host name"),
    ("12:34:zz", None, "not a host name"),
])
def test_host_port_conflicts_are_refused(host: str, port: int | None, words: str) -> None:
    with pytest.raises(InputError, match=words):
        split_host_port(host, port)


@pytest.mark.parametrize("host, port, protocol, field, words", [
    ("imap.gmail.com", 465, "smtp", "host", "smtp.gmail.com port 465 (ssl) or 587"),
    ("IMAP.GMAIL.COM", 587, "smtp", "host", "Gmail's IMAP server"),
    ("outlook.office365.com", 993, "smtp", "host", "smtp.office365.com port 587"),
    ("imap.mail.yahoo.com", 465, "smtp", "host", "smtp.mail.yahoo.com"),
    ("imap.example.com", 993, "smtp", "port", "the SMTP host is likely smtp.example.com"),
    ("mail.example.com", 143, "smtp", "port", "port 143 is for IMAP"),
    ("smtp.gmail.com", 993, "imap", "host", "imap.gmail.com port 993"),
    ("smtp.office365.com", 993, "imap", "host", "outlook.office365.com"),
    ("smtp.example.com", 587, "imap", "port", "the IMAP host is likely imap.example.com"),
    ("mail.example.com", 465, "imap", "port", "port 465 is for SMTP"),
])
def test_clear_protocol_mix_ups_are_refused(host: str, port: int, protocol: str, field: str, words: str) -> None:
    mix = wrong_protocol(host, port, protocol)
    assert mix is not None and mix.refuse and mix.field == field and words in mix.text


@pytest.mark.parametrize("host, port, protocol, words", [
    ("imap.example.com", 587, "smtp", "SMTP host is likely smtp.example.com"),
    ("outlook.office365.com", 587, "smtp", "smtp.office365.com port 587"),
    ("smtp.example.com", 993, "imap", "IMAP host is likely imap.example.com"),
])
def test_doubtful_protocol_mix_ups_are_only_a_note(host: str, port: int, protocol: str, words: str) -> None:
    mix = wrong_protocol(host, port, protocol)
    assert mix is not None and not mix.refuse and words in mix.text


@pytest.mark.parametrize("host, port, protocol", [
    ("smtp.gmail.com", 465, "smtp"), ("smtp.office365.com", 587, "smtp"), ("mail.example.com", 25, "smtp"),
    ("imap.gmail.com", 993, "imap"), ("outlook.office365.com", 993, "imap"), ("127.0.0.1", 40025, "smtp"),
    ("localhost", 40143, "imap"),
])
def test_right_protocol_is_left_alone(host: str, port: int, protocol: str) -> None:
    assert wrong_protocol(host, port, protocol) is None


def test_allow_list_hint_says_when_the_address_is_private() -> None:
    public = "if the provider keeps an allow list, add this server's address 203.0.113.5"
    assert allow_list_hint("203.0.113.5") == public
    assert "private address" in allow_list_hint("10.1.2.3") and "private address" in allow_list_hint("fd00::7")
    assert "private" not in allow_list_hint("127.0.0.1")


def test_server_fields_mend_and_note() -> None:
    fields = servers.ServerFields("gmail", "smtp.gmail.com:465", None, "ssl", "ana@gmail.test", SPACED, 30, None)
    mended = fields.validated("smtp")
    assert (mended.host, mended.port, mended.password) == ("smtp.gmail.com", 465, "abcdefghijklmnop")
    notes = fields.notes("smtp")
    assert len(notes) == 2 and "without its spaces" in notes[0] and "split into host smtp.gmail.com" in notes[1]
    assert not any(SPACED in n or "abcdefghijklmnop" in n for n in notes)


def test_server_fields_without_any_port() -> None:
    with pytest.raises(FieldError) as info:
        servers.ServerFields("x", "smtp.example.com", None, "ssl", None, None, 30, None).validated()
    assert info.value.field == "port" and "--port" in str(info.value)


# --- through the CLI, on a real database -------------------------------------------------------------

def _stored_password(b: Bridge, kind: str, name: str) -> str:
    with Session(b.engine()) as session:
        row = (smtp_accounts.get_smtp if kind == "smtp" else imap_servers.get_imap)(session, name)
        assert row.secret is not None
        return crypto.decrypt(row.secret).reveal()


def test_smtp_add_stores_an_app_password_without_spaces_and_it_signs_in(lite_bridge: Bridge, smtp_peer,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept", auth=("ana", "abcdefghijklmnop"))
    monkeypatch.setenv("RB_PW", SPACED)
    out = lite_bridge.run("smtp", "add", "main", "--host", f"{peer.host}:{peer.port}", "--security", "none",
                          "--username", "ana", "--password-env", "RB_PW").output
    assert "Note: the password looked like an app password" in out
    assert f"split into host {peer.host} and port {peer.port}" in out
    assert SPACED not in out and "abcdefghijklmnop" not in out
    row = lite_bridge.json("smtp", "list")[0]
    assert (row["host"], row["port"]) == (peer.host, peer.port)
    add_alias(lite_bridge)
    test = lite_bridge.run("test", "smtp", "main").stdout
    assert "Authenticated as ana" in test and test.strip().endswith("Status: OK")


def test_imap_add_mends_the_same_way(lite_bridge: Bridge) -> None:
    out = lite_bridge.run("imap", "add", "box", "--host", "[::1]:993", "--security", "ssl", "--username", "u",
                          "--password-stdin", stdin=SPACED + "\n").output
    assert "without its spaces" in out and SPACED not in out
    row = lite_bridge.json("imap", "list")[0]
    assert (row["host"], row["port"]) == ("::1", 993)
    assert _stored_password(lite_bridge, "imap", "box") == "abcdefghijklmnop"


def test_other_passwords_are_stored_as_typed(lite_bridge: Bridge) -> None:
    out = lite_bridge.run("imap", "add", "box", "--host", "localhost", "--port", "993", "--security", "ssl",
                          "--username", "u", "--password-stdin", stdin="pass phrase with spaces\n").output
    assert "Note:" not in out
    assert _stored_password(lite_bridge, "imap", "box") == "pass phrase with spaces"


@pytest.mark.parametrize("args, words", [
    (["smtp", "add", "g", "--host", "imap.gmail.com:465", "--security", "ssl"],
     "imap.gmail.com is Gmail's IMAP server (for reading mail): for sending use smtp.gmail.com"),
    (["smtp", "add", "g", "--host", "mail.example.test", "--port", "993", "--security", "ssl"], "is for IMAP"),
    (["smtp", "add", "g", "--host", "smtp.example.test:587", "--port", "465", "--security", "ssl"],
     "other than --port 465"),
    (["smtp", "add", "g", "--host", "smtp.example.test", "--security", "ssl"], "give the port with --port"),
    (["imap", "add", "i", "--host", "smtp.office365.com", "--port", "587", "--security", "starttls",
      "--username", "u", "--password-env", "PW"], "for reading mail use outlook.office365.com"),
])
def test_clear_mistakes_are_refused_and_change_nothing(lite_bridge: Bridge, monkeypatch: pytest.MonkeyPatch,
                                                       args: list[str], words: str) -> None:
    monkeypatch.setenv("PW", "pw")
    result = lite_bridge.run(*args, ok=False)
    assert result.exit_code != 0 and words in result.output
    assert lite_bridge.json("smtp", "list") == [] and lite_bridge.json("imap", "list") == []


def test_a_host_named_like_imap_is_kept_with_a_note(lite_bridge: Bridge) -> None:
    out = lite_bridge.run("smtp", "add", "x", "--host", "imap.example.test", "--port", "587", "--security",
                          "starttls").output
    assert "Note: imap.example.test is named like an IMAP server" in out and "smtp.example.test" in out
    assert lite_bridge.json("smtp", "list")[0]["host"] == "imap.example.test"
