"""The router's look-ups (routing.router.Directory), answered from the database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, select

from models import Alias, Candidate, Conversation, Employee, InboundMessage, OutboundMessage
from routing.router import ConversationRef, EmployeeRef


class DatabaseDirectory:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _ref(self, conversation_id: int | None) -> ConversationRef | None:
        if conversation_id is None:
            return None
        row = self.session.exec(
            select(Conversation.id, Employee.number, Employee.active, Candidate.email)
            .join(Employee, Employee.id == Conversation.employee_id)
            .join(Candidate, Candidate.id == Conversation.candidate_id)
            .where(Conversation.id == conversation_id)).first()
        return ConversationRef(*row) if row else None

    def conversation_for_message_ids(self, message_ids: Sequence[str]) -> ConversationRef | None:
        ids = list(message_ids)
        for model in (OutboundMessage, InboundMessage):
            found = self.session.exec(select(model.conversation_id).where(
                model.message_id.in_(ids), model.conversation_id.is_not(None)).limit(1)).first()
            if found is not None:
                return self._ref(found)
        return None

    def conversation(self, conversation_id: int) -> ConversationRef | None:
        return self._ref(conversation_id)

    def conversation_for_thread_index(self, root: str) -> ConversationRef | None:
        return self._ref(self.session.exec(select(Conversation.id).where(Conversation.thread_index == root)).first())

    def employee(self, number: int) -> EmployeeRef | None:
        row = self.session.exec(select(Employee.number, Employee.active).where(Employee.number == number)).first()
        return EmployeeRef(*row) if row else None

    def sender_conversations(self, email: str) -> list[ConversationRef]:
        ids = self.session.exec(select(Conversation.id).join(Candidate, Candidate.id == Conversation.candidate_id)
                                .where(Candidate.email == email.lower()).order_by(Conversation.id)).all()
        return [ref for ref in (self._ref(i) for i in ids) if ref]

    def is_own_address(self, email: str) -> bool:
        return self.session.exec(select(Alias.id).where(func.lower(Alias.from_address) == email.lower())).first() \
            is not None
