"""Tables and storage: SQLModel classes, engine and sessions, Alembic migrations."""

from models.tables import (
    UNSENT_STATUSES,
    AlertState,
    Alias,
    ApiToken,
    AuthThrottle,
    Candidate,
    Conversation,
    DeliveryAttempt,
    Employee,
    ImapFolderState,
    ImapServer,
    InboundMessage,
    OAuthClient,
    OAuthGrant,
    OutboundMessage,
    Setting,
    SmtpAccount,
    Webhook,
    WebhookDelivery,
    WebSession,
    aware,
    utcnow,
)

__all__ = [
    "AlertState", "Alias", "ApiToken", "AuthThrottle", "Candidate", "Conversation", "DeliveryAttempt", "Employee",
    "ImapFolderState", "ImapServer", "InboundMessage", "OAuthClient", "OAuthGrant", "OutboundMessage", "Setting",
    "SmtpAccount", "UNSENT_STATUSES", "Webhook", "WebhookDelivery", "WebSession", "aware", "utcnow",
]
