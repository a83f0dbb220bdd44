"""Tables and storage: SQLModel classes, engine and sessions, Alembic migrations."""

from models.tables import (
    Alias,
    Candidate,
    Conversation,
    DeliveryAttempt,
    Employee,
    ImapFolderState,
    ImapServer,
    InboundMessage,
    OutboundMessage,
    Setting,
    SmtpAccount,
    utcnow,
)

__all__ = [
    "Alias", "Candidate", "Conversation", "DeliveryAttempt", "Employee", "ImapFolderState", "ImapServer",
    "InboundMessage", "OutboundMessage", "Setting", "SmtpAccount", "utcnow",
]
