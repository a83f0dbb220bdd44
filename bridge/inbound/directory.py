"""The router's look-ups (routing.router.Directory), answered from the database.

The employees and the aliases' own addresses, read by every message, are read once per batch where the
session remembers (bridge.memo: the read of a batch routed together, bridge.inbound.pipeline.route_batch).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, bindparam
from sqlmodel import Session, select

from bridge.memo import remembered
from models import Alias, Candidate, Conversation, Employee, InboundMessage, OutboundMessage
from routing.router import ConversationRef, EmployeeRef


def _refs_where(*where: object) -> Select:
    """Conversations with their employee and candidate, in one query; built once (Core, with parameters):
    building a statement cost more than running it."""
    return (select(Conversation.id, Employee.number, Employee.active, Candidate.email)
            .join(Employee, Employee.id == Conversation.employee_id)
            .join(Candidate, Candidate.id == Conversation.candidate_id).where(*where).order_by(Conversation.id))


_BY_ID = _refs_where(Conversation.id == bindparam("id"))
_BY_SENDER = _refs_where(Candidate.email == bindparam("email"))
_BY_MESSAGE_ID = [  # what we sent first, then what we received, in a conversation
    _refs_where(Conversation.id == select(model.conversation_id).where(
        model.message_id.in_(bindparam("ids", expanding=True)), model.conversation_id.is_not(None))
        .limit(1).scalar_subquery())
    for model in (OutboundMessage, InboundMessage)]


class DatabaseDirectory:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _refs(self, query: Select, **params: object) -> list[ConversationRef]:
        return [ConversationRef(*row) for row in self.session.connection().execute(query, params)]

    def _ref(self, conversation_id: int | None) -> ConversationRef | None:
        if conversation_id is None:
            return None
        found = self._refs(_BY_ID, id=conversation_id)
        return found[0] if found else None

    def conversation_for_message_ids(self, message_ids: Sequence[str]) -> ConversationRef | None:
        for query in _BY_MESSAGE_ID:
            found = self._refs(query, ids=list(message_ids))
            if found:
                return found[0]
        return None

    def conversation(self, conversation_id: int) -> ConversationRef | None:
        return self._ref(conversation_id)

    def conversation_for_thread_index(self, root: str) -> ConversationRef | None:
        return self._ref(self.session.exec(select(Conversation.id).where(Conversation.thread_index == root)).first())

    def employee(self, number: int) -> EmployeeRef | None:
        def read() -> EmployeeRef | None:
            row = self.session.exec(select(Employee.number, Employee.active).where(Employee.number == number)).first()
            return EmployeeRef(*row) if row else None
        return remembered(self.session, ("employee_ref", number), read)

    def sender_conversations(self, email: str) -> list[ConversationRef]:
        return self._refs(_BY_SENDER, email=email.lower())

    def is_own_address(self, email: str) -> bool:
        own = remembered(self.session, "own_addresses", lambda: frozenset(
            a.lower() for a in self.session.exec(select(Alias.from_address)) if a))
        return email.lower() in own
