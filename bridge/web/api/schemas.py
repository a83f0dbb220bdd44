"""Request and response bodies of the HTTP API, so /api/v1/openapi.json documents every field.

The response objects are the CLI's `--json` objects (bridge.json_views: inbound_json, log_json);
`extra="allow"` passes on any key those gain, so the API never silently drops one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Route = Literal["employee", "unassigned", "bounce"]
Status = Literal["queued", "sending", "sent", "deferred", "undeliverable", "not_sent"]
MAX_NUMBER = 999_999_999  # employee numbers (bridge.accounts)
MAX_ID = 2**63 - 1


class Problem(BaseModel):
    """An error: what is wrong, in words a person can act on."""

    detail: str


class Inbound(BaseModel):
    """An inbound message, as `replybridge messages list --json` prints it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: int
    message_id: str | None
    from_: str | None = Field(alias="from")
    from_name: str | None
    subject: str | None
    received_at: str = Field(description="ISO 8601, UTC")
    source: str = Field(description="smtp | imap | pipe")
    kind: str | None = Field(description="reply | auto_reply | bounce")
    route: Route | None
    employee_number: int | None
    candidate: str | None = Field(description="the candidate's address, once the message is linked to one")
    reason: str | None = Field(description="why it was routed so")
    rule: str | None
    flagged: bool
    flag_reason: str | None
    triage: str | None = Field(description="open | assigned | dismissed (Unassigned messages only)")
    conversation_id: int | None
    outbound_id: int | None
    parse_error: str | None
    delivery: str
    delivery_error: str | None


class AttachmentOut(BaseModel):
    name: str
    content_type: str
    size: int = Field(description="bytes, decoded")
    url: str = Field(description="GET it with the same bearer token")


class MessageDetail(Inbound):
    """An inbound message with what it says."""

    text: str | None = Field(description="the reply text: the new text without the quoted history")
    body_text: str
    body_html: str | None = Field(description="sanitized HTML (no script, styles, event handlers or remote "
                                              "images); null when the message has no HTML part")
    has_remote_images: bool = Field(description="the HTML referenced remote images, which were removed")
    attachments: list[AttachmentOut]


class InboundPage(BaseModel):
    items: list[Inbound]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class MailLog(BaseModel):
    """A Mail Log entry, as `replybridge log --json` prints it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: int
    message_id: str
    to: str
    from_: str = Field(alias="from")
    subject: str
    status: Status
    attempts: int
    last_reply: str | None
    hint: str | None
    sent_folder: str = Field(description="pending | appended | skipped | failed | none")
    sent_folder_error: str | None
    employee_number: int | None
    automated: bool
    smtp_account: str | None
    created_at: str
    sent_at: str | None
    purpose: str = Field(description="message | forward | acknowledgement")
    inbound_id: int | None
    next_attempt_at: str | None


class MailLogPage(BaseModel):
    items: list[MailLog]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    employee_number: int = Field(ge=0, le=MAX_NUMBER, description="the employee who gets the message (and the "
                                                                  "candidate's next replies)")


class OutboundIn(BaseModel):
    """One message to send. Exactly one of `body` (plain text) and `html`."""

    model_config = ConfigDict(extra="forbid")

    employee_number: int = Field(ge=0, le=MAX_NUMBER, description="who sends: the numbered reply address is theirs")
    alias: str | None = Field(None, description="the alias's description; default: the employee's default alias")
    to: str = Field(description="one address, name@domain")
    subject: str
    body: str | None = Field(None, description="plain text")
    html: str | None = Field(None, description="HTML; a text alternative is made from it")
    in_reply_to: int | None = Field(None, ge=1, le=MAX_ID, description="an inbound message id: this message answers it "
                                                      "(In-Reply-To and References from it)")

    @model_validator(mode="after")
    def one_body(self) -> OutboundIn:
        if (self.body is None) == (self.html is None):
            raise ValueError("give exactly one of body (plain text) or html")
        return self


class ErasureOut(BaseModel):
    """What an erasure removed (or a dry run would), by kind: never the address or any content."""

    dry_run: bool
    receipt_id: int | None = Field(description="the erasure receipt kept as proof; null for a dry run")
    at: str = Field(description="ISO 8601, UTC")
    counts: dict[str, int] = Field(description="records per kind: inbound, bounces, mail_log, forwards, cancelled "
                                               "(messages that were still to go out), delivery_attempts, "
                                               "conversations, candidates, webhook_deliveries, alerts_redacted")
    imap: dict[str, int] = Field(description='copies deleted per "server/folder" (with from_imap)')
    total: int
    erased_before: int = Field(description="earlier erasure receipts for the same address")
