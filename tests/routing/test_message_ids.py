"""Our Message-IDs carry a signed conversation token; forgeries and other IDs read as nothing."""

import base64

from routing.message_ids import (
    child_thread_index,
    conversation_of,
    make_message_id,
    new_thread_index,
    normalize_message_id,
    thread_index_root,
)

KEY = b"k" * 32


def test_token_round_trip() -> None:
    mid = make_message_id(KEY, "example.test", 77)
    assert mid.startswith("<r.") and mid.endswith("@example.test>")
    assert conversation_of(KEY, mid) == 77
    assert conversation_of(KEY, mid.strip("<>")) == 77


def test_unique_ids() -> None:
    assert len({make_message_id(KEY, "example.test", 1) for _ in range(200)}) == 200


def test_forged_or_foreign_ids_are_refused() -> None:
    mid = make_message_id(KEY, "example.test", 77)
    assert conversation_of(b"x" * 32, mid) is None  # another installation's key
    assert conversation_of(KEY, mid.replace(".c77.", ".c78.")) is None  # tampered conversation
    assert conversation_of(KEY, "<CAH1234@mail.gmail.com>") is None
    assert conversation_of(KEY, make_message_id(KEY, "example.test", None)) is None


def test_normalize() -> None:
    assert normalize_message_id(" abc@Example.COM ") == "<abc@example.com>"
    assert normalize_message_id("<Abc@x.test>") == "<Abc@x.test>"


def test_thread_index_blocks() -> None:
    root = new_thread_index(now=1_800_000_000)
    raw = base64.b64decode(root)
    assert len(raw) == 22 and raw[0] == 0x01  # FILETIME of this century starts 0x01
    child = child_thread_index(root, 1_800_000_000, now=1_800_000_600)
    assert len(base64.b64decode(child)) == 27
    assert thread_index_root(child) == root
    assert thread_index_root("not base64!") is None
