"""Which stored rows are one candidate's: the one answer erasure and export share, so what an access request
shows and what an erasure removes never drift apart.

A person is their address plus every address confirmed as theirs (`candidate.same_person_as` points each
other address at the first candidate). Their mail is what came from those addresses (header or envelope
sender) or belongs to their candidate rows or conversations, the Mail Log entries to them or in their
conversations, the forwards that carried their messages to a recruiter, and the bounces of those entries.

Most of it is found through indexes (the sender address, stored in lower case; candidate and conversation
ids). The envelope sender is not indexed and, on SQLite, sits after the raw bytes in the row: finding it
reads every stored message. So the erasure scans once before it takes the write lock, and under the lock
again only the rows stored since (`again`): the receiver is not held up by a read of the whole mailbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses

from sqlalchemy import and_, func, or_
from sqlmodel import Session, select

from bridge.input_checks import check_address
from models import UNSENT_STATUSES, Candidate, Conversation, InboundMessage, OutboundMessage

CHUNK = 500  # ids per IN (...): far below SQLite's and PostgreSQL's limits on parameters


def normalized(address: str) -> str:
    """One plain address in lower case, or an InputError naming the field."""
    return check_address(address.strip(), "address").lower()


@dataclass
class Selection:
    """Ids of one person's rows, by kind (the kinds are disjoint: each row is counted once)."""

    addresses: list[str]  # the address asked for first, then the person's other confirmed addresses
    candidate_ids: list[int] = field(default_factory=list)
    conversation_ids: list[int] = field(default_factory=list)
    inbound_ids: list[int] = field(default_factory=list)  # from them, or of their candidates or conversations
    bounce_ids: list[int] = field(default_factory=list)  # bounces of their Mail Log entries
    outbound_ids: list[int] = field(default_factory=list)  # Mail Log entries to them or in their conversations
    forward_ids: list[int] = field(default_factory=list)  # forwards of their messages to a recruiter
    unsent_ids: list[int] = field(default_factory=list)  # of the two above: still waiting to go out
    scanned_to: int = 0  # the newest inbound id when the envelope senders were scanned

    @property
    def all_inbound(self) -> list[int]:
        return self.inbound_ids + self.bounce_ids

    @property
    def all_outbound(self) -> list[int]:
        return self.outbound_ids + self.forward_ids


def chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start:start + CHUNK])


def person(session: Session, address: str) -> tuple[list[str], list[int]]:
    """The addresses and candidate ids of the person `address` belongs to (just the address if no candidate)."""
    ids: set[int] = set()
    wanted = {address}
    while True:
        rows = session.exec(select(Candidate.id, Candidate.same_person_as)
                            .where(or_(Candidate.email.in_(wanted), Candidate.id.in_(ids),
                                       Candidate.same_person_as.in_(ids)))).all()
        found = {i for row in rows for i in row if i is not None}
        if found <= ids:
            break
        ids |= found
    emails = session.exec(select(Candidate.email).where(Candidate.id.in_(ids))).all() if ids else []
    return [address, *sorted(set(emails) - {address})], sorted(ids)


def select_person(session: Session, address: str, again: Selection | None = None) -> Selection:
    """Every row of the person with this (normalized) address. `again`: a selection made a moment ago, whose
    scan of the envelope senders is taken up from where it ended (the rows it found that still exist, and
    the rows stored since) instead of read again whole."""
    addresses, candidate_ids = person(session, address)
    found = Selection(addresses, candidate_ids)
    if candidate_ids:
        found.conversation_ids = list(session.exec(select(Conversation.id)
                                                   .where(Conversation.candidate_id.in_(candidate_ids))).all())
    found.scanned_to = session.exec(select(func.coalesce(func.max(InboundMessage.id), 0))).one()
    found.inbound_ids = _inbound(session, addresses, candidate_ids, found.conversation_ids, again)
    found.outbound_ids = _outbound(session, addresses, found.conversation_ids)
    _follow(session, found)
    found.unsent_ids = sorted(i for part in chunks(found.all_outbound) for i in _ids(
        session, OutboundMessage, OutboundMessage.id.in_(part), OutboundMessage.status.in_(UNSENT_STATUSES)))
    return found


def _ids(session: Session, table: type, *conditions: object) -> list[int]:
    return sorted(session.exec(select(table.id).where(*conditions)).all())


def _inbound(session: Session, addresses: list[str], candidate_ids: list[int], conversation_ids: list[int],
             again: Selection | None) -> list[int]:
    m = InboundMessage
    indexed = [m.from_addr.in_(addresses)]  # parse stores the sender in lower case
    if candidate_ids:
        indexed.append(m.candidate_id.in_(candidate_ids))
    if conversation_ids:
        indexed.append(m.conversation_id.in_(conversation_ids))
    envelope = func.lower(m.envelope_from).in_(addresses)
    if again is None:
        return _ids(session, m, or_(*indexed, envelope))
    found = set(_ids(session, m, or_(*indexed, and_(m.id > again.scanned_to, envelope))))
    for part in chunks(again.inbound_ids):
        found |= set(_ids(session, m, m.id.in_(part)))
    return sorted(found)


def _like(address: str) -> str:
    escaped = address.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _outbound(session: Session, addresses: list[str], conversation_ids: list[int]) -> list[int]:
    """Entries to them (the To may carry a display name: the address itself is compared) or in their
    conversations; forwards to recruiters are found apart, by the message they carry."""
    m = OutboundMessage
    maybe = or_(*[func.lower(m.to_addr).like(_like(a), escape="\\") for a in addresses])
    rows = session.exec(select(m.id, m.to_addr).where(maybe, m.purpose != "forward")).all()
    wanted = set(addresses)
    ids = {i for i, to in rows if {a.lower() for _n, a in getaddresses([to])} & wanted}
    if conversation_ids:
        ids |= set(session.exec(select(m.id).where(m.conversation_id.in_(conversation_ids),
                                                   m.purpose != "forward")).all())
    return sorted(ids)


def _follow(session: Session, found: Selection) -> None:
    """Forwards of their messages and bounces of their entries (and of those forwards), until none is new."""
    while True:
        forwards = set()
        for part in chunks(found.all_inbound):
            forwards |= set(session.exec(select(OutboundMessage.id).where(
                OutboundMessage.purpose == "forward", OutboundMessage.inbound_id.in_(part))).all())
        bounces = set()
        for part in chunks(found.all_outbound + sorted(forwards)):
            bounces |= set(session.exec(select(InboundMessage.id).where(
                InboundMessage.outbound_id.in_(part))).all())
        new_forwards, new_bounces = forwards - set(found.all_outbound), bounces - set(found.all_inbound)
        if not new_forwards and not new_bounces:
            return
        found.forward_ids = sorted(set(found.forward_ids) | new_forwards)
        found.bounce_ids = sorted(set(found.bounce_ids) | new_bounces)
