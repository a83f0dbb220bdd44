"""A candidate with mail of every kind (and another who must be left alone), and a scan of every table's text
for what would identify them: the erasure and export tests share it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.engine import Engine

from tests.helpers.bridge import Bridge
from tests.helpers.inbound import ingest_json
from tests.helpers.messages import dsn, reply
from tests.helpers.setup_steps import add_account, add_alias

LENA = "lena.quist@cand.example"
LENA_PRIVATE = "lq.home@private.example"
OTHER = "omar@else.example"
# words only Lena's mail holds (subject, body, her reply, her other address's message)
LENA_WORDS = ("zephyrquartz", "xylomarble", "quokkaborough")
OTHER_WORD = "plumbagoline"


@dataclass
class Staged:
    """Ids of what was staged."""

    lena_sent: dict  # the Mail Log entry of our first message to Lena
    lena_reply: dict  # her reply in the thread
    lena_private: dict  # her message from her other address, confirmed as hers
    other_reply: dict


def stage(b: Bridge, smtp_peer, monkeypatch: pytest.MonkeyPatch, *, imap: str | None = None):  # noqa: ANN001, ANN201
    """An accepting SMTP peer (also the database-wide account, so replies are forwarded to the recruiter),
    a message to Lena and one to Omar, their replies, Lena's message from her other address confirmed as
    hers, and a bounce of our message to Lena. Returns (peer, Staged)."""
    peer = smtp_peer("accept")
    add_account(b, peer.host, peer.port, monkeypatch, default=True)
    add_alias(b, imap=imap)
    b.run("send", "--employee", "1042", "--to", LENA, "--subject", "Zephyrquartz interview",
          "--body", "Dear Lena, see you at Xylomarble house.")
    b.run("send", "--employee", "1042", "--to", OTHER, "--subject", "Plumbagoline interview",
          "--body", "Dear Omar, see you Monday.")
    b.run("worker", "--once")
    log = {e["to"]: e for e in b.json("log")}
    lena_reply = ingest_json(b, reply("lr1@cand.example", f"Lena Quist <{LENA}>", "jobs+1042@example.test",
                                      "Re: Zephyrquartz interview", log[LENA]["message_id"],
                                      body="Quokkaborough is fine, thanks.\r\n"))
    private = ingest_json(b, reply("lr2@private.example", f"Lena Q <{LENA_PRIVATE}>", "jobs+1042@example.test",
                                   "Re: Zephyrquartz interview", log[LENA]["message_id"],
                                   body="From home: Quokkaborough works.\r\n"))
    assert private["flagged"]
    b.run("messages", "confirm-sender", str(private["id"]))
    other = ingest_json(b, reply("or1@else.example", f"Omar <{OTHER}>", "jobs+1042@example.test",
                                 "Re: Plumbagoline interview", log[OTHER]["message_id"],
                                 body="Plumbagoline suits me.\r\n"))
    bounce = ingest_json(b, dsn(log[LENA]["message_id"], LENA, diag=f"550 5.2.2 <{LENA}>: mailbox full"))
    assert bounce["route"] == "bounce"
    b.run("worker", "--once")  # the forwards go out
    return peer, Staged(log[LENA], lena_reply, private, other)


NEEDLES = (LENA, LENA_PRIVATE, *LENA_WORDS)


def found_in_tables(engine: Engine, needles: tuple[str, ...] = NEEDLES) -> list[str]:
    """"table.column: needle" for every text or binary value holding a needle (case-blind), in every table the
    database has (read from the database itself, so a table added later is scanned too)."""
    hits = []
    found = MetaData()
    found.reflect(bind=engine)
    with engine.connect() as connection:
        for table in found.sorted_tables:
            columns = list(table.columns)
            for row in connection.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("latin-1")
                    if isinstance(value, str):
                        hits += [f"{table.name}.{column.name}: {n}" for n in needles if n in value.lower()]
    return hits
