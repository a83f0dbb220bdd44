"""Tables and storage: SQLModel classes, engine and sessions, Alembic migrations.

The tables load on first use of a name below (PEP 562), not on `import models.url`: building the SQLModel
classes costs a fifth of a second, which the lean `ingest` start-up does not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.tables import (
        UNSENT_STATUSES,
        AlertState,
        Alias,
        ApiToken,
        AuditEvent,
        AuthThrottle,
        Candidate,
        Conversation,
        DeliveryAttempt,
        Employee,
        ErasureReceipt,
        ImapFolderState,
        ImapServer,
        InboundMessage,
        LoopProbe,
        OAuthClient,
        OAuthGrant,
        OutboundMessage,
        RetentionTally,
        Setting,
        SmtpAccount,
        Webhook,
        WebhookDelivery,
        WebSession,
        aware,
        utcnow,
    )

__all__ = [
    "AlertState", "Alias", "ApiToken", "AuditEvent", "AuthThrottle", "Candidate", "Conversation", "DeliveryAttempt",
    "Employee", "ErasureReceipt", "ImapFolderState", "ImapServer", "InboundMessage", "LoopProbe", "OAuthClient",
    "OAuthGrant", "OutboundMessage", "RetentionTally", "Setting", "SmtpAccount", "UNSENT_STATUSES", "Webhook",
    "WebhookDelivery", "WebSession", "aware", "utcnow",
]


def __getattr__(name: str) -> object:
    if name in __all__:
        return getattr(importlib.import_module("models.tables"), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
