"""Every message of the shared real-world corpus goes through the whole inbound pipeline.

Broken MIME, odd newlines, huge and deep messages: nothing may escape, the raw bytes are kept
exactly, and every message ends routed (bounces as bounces, the rest somewhere a person sees).
"""

from __future__ import annotations

import csv
import time

import pytest
from sqlmodel import Session, select

from bridge.inbound import pipeline, raw_store
from models import InboundMessage
from tests.helpers.bridge import Bridge
from tests.helpers.corpus import CORPUS

pytestmark = pytest.mark.skipif(not (CORPUS / "manifest.csv").exists(),
                                reason="the shared mail corpus is not here (../shared/corpus)")


def corpus_files() -> list[dict[str, str]]:
    with open(CORPUS / "manifest.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row["category"] != "label_file"]


def test_every_corpus_message_is_stored_exactly_and_routed(lite_bridge: Bridge) -> None:
    engine = lite_bridge.engine()
    rows = corpus_files()
    raws = {row["file"]: (CORPUS / row["file"]).read_bytes() for row in rows}
    started = time.perf_counter()
    stored = raw_store.store_many(engine, [raw_store.Incoming(raw, "pipe") for raw in raws.values()])
    for item in stored:
        if not item.duplicate:
            pipeline.process(engine, item.id)
    elapsed = time.perf_counter() - started
    print(f"\ncorpus: {len(raws)} messages stored and routed in {elapsed:.1f} s")

    with Session(engine) as s:
        kept = {m.id: m for m in s.exec(select(InboundMessage))}
    for (name, raw), item in zip(raws.items(), stored, strict=True):
        row = kept[item.id]
        if not item.duplicate:  # same Message-ID in two corpus files: the first one is kept
            assert row.raw == raw, name
        assert row.routed_at is not None and row.route in ("employee", "unassigned", "bounce"), name
    labels = {row["file"]: row["category"] for row in rows}
    kinds = {name: kept[item.id].kind for (name, _raw), item in zip(raws.items(), stored, strict=True)
             if not item.duplicate}
    bounces = [n for n, c in labels.items() if c in ("bounce", "bounce_hard_case", "bounce_temporary") and n in kinds]
    recall = sum(kinds[n] == "bounce" for n in bounces) / len(bounces)
    people = [n for n, c in labels.items() if c.startswith("reply_") and n in kinds]
    assert recall >= 0.97, recall
    assert not [n for n in people if kinds[n] == "bounce"]
