"""The tables. Storage only: no mail logic lives here (docs/ARCHITECTURE.md, "Rooms")."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    """Aware UTC: the one time convention of every column."""
    return dt.datetime.now(dt.UTC)


def aware(at: dt.datetime) -> dt.datetime:
    """A stored time as aware UTC (SQLite hands back naive UTC; PostgreSQL aware)."""
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


class Setting(SQLModel, table=True):
    """One portal setting; values are text, lists are JSON. Keys and defaults: bridge.portal."""

    key: str = Field(primary_key=True, max_length=64)
    value: str


class Employee(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True, index=True)
    name: str
    email: str
    active: bool = True
    admin: bool = False
    delivery: str = "forward"  # how routed replies reach them: forward | imap | none
    password_hash: str | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class OAuthClient(SQLModel, table=True):
    """An application registered with Microsoft, Google or another provider: where to get tokens."""

    __tablename__ = "oauth_client"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    provider: str  # microsoft | google | generic
    client_id: str
    client_secret: str | None = None  # Fernet token
    tenant: str | None = None
    scopes: str = "[]"  # JSON list: delegated scopes (empty: the provider's preset)
    authorize_url: str
    token_url: str
    device_url: str | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class OAuthGrant(SQLModel, table=True):
    """The tokens of one SMTP account or IMAP server. `refreshing_until` is a lease: one refresh at a
    time across workers and processes, because providers rotate refresh tokens and a lost race would
    sign the account out."""

    __tablename__ = "oauth_grant"
    __table_args__ = (UniqueConstraint("account_kind", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_kind: str  # smtp | imap
    account_id: int
    username: str | None = None  # the mailbox the tokens act for (XOAUTH2 user=)
    refresh_token: str | None = None  # Fernet
    access_token: str | None = None  # Fernet
    expires_at: dt.datetime | None = None
    state: str = "needs_sign_in"  # ok | needs_sign_in (never signed in, revoked or expired: sign in again)
    state_reason: str | None = None
    refreshing_until: dt.datetime | None = None
    updated_at: dt.datetime = Field(default_factory=utcnow)


class SmtpAccount(SQLModel, table=True):
    __tablename__ = "smtp_account"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    host: str
    port: int
    security: str  # ssl | starttls | none
    username: str | None = None
    secret: str | None = None  # Fernet token, never the password itself
    timeout: float = 30.0
    ca_file: str | None = None
    is_default: bool = False  # the database-wide account for automated mail
    provider_files_sent: bool = False  # the provider files SMTP-sent mail itself: skip our Sent append
    oauth_client_id: int | None = Field(default=None, foreign_key="oauth_client.id")  # XOAUTH2 instead of a password
    oauth_flow: str | None = None  # delegated (a person signed in) | app (client credentials)
    # the friendly name and address mail of its own goes out under (error reports, letters to Unassigned
    # senders), as a recruiting product's SMTP tab has them; unset: the mailer name and the username
    from_name: str | None = None
    from_address: str | None = None


class ImapServer(SQLModel, table=True):
    __tablename__ = "imap_server"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    host: str
    port: int
    security: str
    username: str
    secret: str | None = None
    timeout: float = 30.0
    ca_file: str | None = None
    sent_folder: str = "auto"  # "auto" = SPECIAL-USE \Sent, then the usual names
    poll_folder: str | None = None
    poll_after: str = "seen"  # after a fetched message is stored: seen | move:FOLDER | none
    oauth_client_id: int | None = Field(default=None, foreign_key="oauth_client.id")
    oauth_flow: str | None = None


class Alias(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    employee_id: int = Field(foreign_key="employee.id", index=True)
    description: str = Field(unique=True)
    display_name: str
    from_address: str
    reply_to: str | None = None
    smtp_account_id: int | None = Field(default=None, foreign_key="smtp_account.id")
    imap_server_id: int | None = Field(default=None, foreign_key="imap_server.id")
    is_default: bool = False
    delay_ms: int = 0
    next_send_at: dt.datetime | None = None  # rate limit: no send through this alias before this


class Candidate(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True)  # normalized: lower case
    name: str | None = None
    # another address a person confirmed as this candidate's (a thread reply from a new address): the candidate
    # it belongs to, so erasing or exporting one address covers the person's others
    same_person_as: int | None = Field(default=None, foreign_key="candidate.id", index=True)
    created_at: dt.datetime = Field(default_factory=utcnow)


class Conversation(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("employee_id", "candidate_id"),)

    id: int | None = Field(default=None, primary_key=True)
    employee_id: int = Field(foreign_key="employee.id", index=True)
    candidate_id: int = Field(foreign_key="candidate.id", index=True)
    thread_index: str | None = None  # Outlook Thread-Index header block (base64) of the thread
    created_at: dt.datetime = Field(default_factory=utcnow)


UNSENT_STATUSES = ("queued", "deferred", "sending")  # an outbound message still to go out


class OutboundMessage(SQLModel, table=True):
    """One entry of the Mail Log: the exact bytes to send and where they stand."""

    __tablename__ = "outbound_message"
    # suggestions for unassigned mail look up the subjects we sent ("Re: Backend engineer")
    __table_args__ = (Index("ix_outbound_message_subject", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True, index=True)  # with angle brackets
    employee_id: int | None = Field(default=None, foreign_key="employee.id", index=True)
    alias_id: int | None = Field(default=None, foreign_key="alias.id")
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    automated: bool = False
    purpose: str = "message"  # message | forward (a reply to its recruiter) | acknowledgement
    # the reply a forward carries; no foreign key: inbound_message refers to this table already
    inbound_id: int | None = Field(default=None, index=True)
    from_addr: str
    envelope_from: str
    to_addr: str
    subject: str
    thread_index: str | None = None
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default="queued", index=True)
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(default_factory=utcnow, index=True)
    claimed_until: dt.datetime | None = None
    last_code: int | None = None
    last_reply: str | None = None
    hint: str | None = None
    smtp_account: str | None = None  # name of the account of the last attempt
    sent_at: dt.datetime | None = None
    sent_folder: str = "none"  # none | pending | appended | skipped | failed
    sent_folder_attempts: int = 0
    sent_folder_next_at: dt.datetime | None = None
    sent_folder_error: str | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class DeliveryAttempt(SQLModel, table=True):
    """Every SMTP attempt with the server's answer, for the Mail Log's history."""

    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, primary_key=True)
    outbound_id: int = Field(foreign_key="outbound_message.id", index=True)
    number: int
    at: dt.datetime = Field(default_factory=utcnow)
    smtp_account: str | None = None
    outcome: str  # sent | deferred | undeliverable | not_sent
    code: int | None = None
    reply: str | None = None
    hint: str | None = None


class InboundMessage(SQLModel, table=True):
    """One received message: raw bytes first (step 1), then the routing decision (steps 2-5).

    `dedup_key` is the normalized Message-ID (or a content hash when there is none), so the same
    reply seen by SMTP and by IMAP is stored once. `routed_at` is empty until the decision is
    committed: such rows are finished by the worker after a crash.
    """

    __tablename__ = "inbound_message"
    # the Unassigned page and the API page by (route, triage) newest first: keyset on (received_at, id)
    __table_args__ = (Index("ix_inbound_message_inbox", "route", "triage", "received_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(unique=True, index=True, max_length=998)
    message_id: str | None = Field(default=None, index=True, max_length=998)
    # a different message under a known Message-ID is stored apart with dedup_key "MESSAGE-ID FINGERPRINT"
    # (bridge.inbound.parse.content_fingerprint, made from the raw bytes when a Message-ID is met again)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int
    source: str  # smtp | imap | pipe
    envelope_from: str | None = None
    envelope_to: str = "[]"  # JSON list
    received_at: dt.datetime = Field(default_factory=utcnow, index=True)
    from_addr: str | None = Field(default=None, index=True)
    from_name: str | None = None
    subject: str | None = None
    in_reply_to: str | None = None
    references: str | None = None
    reply_text: str | None = None
    attachment_names: str | None = None  # one per line, filled with the reply text (search reads them)
    parse_error: str | None = None
    kind: str | None = None  # reply | auto_reply | bounce
    route: str | None = Field(default=None, index=True)  # employee | unassigned | bounce
    rule: str | None = None  # bounce | thread | numbered | known_sender | loop | none
    reason: str | None = None
    employee_id: int | None = Field(default=None, foreign_key="employee.id", index=True)
    # indexed: an erasure finds a candidate's mail by it
    candidate_id: int | None = Field(default=None, foreign_key="candidate.id", index=True)
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id", index=True)
    # a bounce's original; indexed: removing a Mail Log entry (retention, erasure) looks for what points at it
    outbound_id: int | None = Field(default=None, foreign_key="outbound_message.id", index=True)
    flagged: bool = False
    flag_reason: str | None = None
    triage: str | None = Field(default=None, index=True)  # open | assigned | dismissed (unassigned only)
    triaged_at: dt.datetime | None = None  # when a person assigned or dismissed it (dismissed ones expire from it)
    routed_at: dt.datetime | None = Field(default=None, index=True)
    # delivery to the employee: none | queued (a forward in the outbound queue) | pending | delivered | failed
    delivery: str = Field(default="none", index=True)
    delivery_attempts: int = 0
    delivery_next_at: dt.datetime | None = None
    delivery_error: str | None = None
    # routing that failed (the database, or the message itself): retried with backoff, then Unassigned
    route_attempts: int = 0
    route_next_at: dt.datetime | None = None
    route_error: str | None = None


class ImapFolderState(SQLModel, table=True):
    """Progress of one polled IMAP folder, advanced in the transaction that stores what was fetched.

    `lease_owner`/`lease_until`: one poller per folder across processes and machines.
    """

    __tablename__ = "imap_folder_state"
    __table_args__ = (UniqueConstraint("imap_server_id", "folder"),)

    id: int | None = Field(default=None, primary_key=True)
    imap_server_id: int = Field(foreign_key="imap_server.id", index=True)
    folder: str
    uidvalidity: int | None = None
    last_uid: int = 0
    waiting: int | None = None  # found above last_uid by the latest pass and not yet fetched
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None
    last_poll_at: dt.datetime | None = None
    last_error: str | None = None


class ApiToken(SQLModel, table=True):
    """A bearer token of the HTTP API: only its SHA-256 is stored (the token is 256 random bits)."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    employee_id: int | None = Field(default=None, foreign_key="employee.id")  # None with admin: every employee
    admin: bool = False
    created_at: dt.datetime = Field(default_factory=utcnow)
    last_used_at: dt.datetime | None = None


class WebSession(SQLModel, table=True):
    """A signed-in browser session: the cookie holds a random token, this row its SHA-256, so the server can
    end it (sign-out, deactivation, a new password) and a copied cookie stops working."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    employee_id: int = Field(foreign_key="employee.id", index=True)
    created_at: dt.datetime = Field(default_factory=utcnow)
    expires_at: dt.datetime
    ended_at: dt.datetime | None = None


class AuthThrottle(SQLModel, table=True):
    """Failed attempts under one key (a sign-in's account or address, an API client's address): kept in the
    database so every web process counts the same, and counted before a password is checked."""

    __tablename__ = "auth_throttle"

    key: str = Field(primary_key=True, max_length=300)
    failures: int = 0
    blocked_until: dt.datetime | None = None
    last_at: dt.datetime = Field(default_factory=utcnow)


class Webhook(SQLModel, table=True):
    """A receiver of events, signed per the Standard Webhooks spec with its own secret."""

    id: int | None = Field(default=None, primary_key=True)
    url: str
    secret: str  # Fernet token of the whsec_ secret
    events: str = "[]"  # JSON list; empty means every event
    active: bool = True
    created_at: dt.datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One event for one webhook: written in the transaction of the change it reports (an outbox),
    delivered by the worker, retried with backoff until the receiver answers 2xx."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(foreign_key="webhook.id", index=True)
    event_id: str = Field(max_length=64)  # the webhook-id header: receivers dedupe by it
    event_type: str
    payload: str  # the JSON body, fixed when the event happened
    status: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(default_factory=utcnow)
    claimed_until: dt.datetime | None = None
    last_status: int | None = None  # the receiver's HTTP status
    last_error: str | None = None  # or why there was none (timeout, refused ...)
    created_at: dt.datetime = Field(default_factory=utcnow)
    delivered_at: dt.datetime | None = None


class AlertState(SQLModel, table=True):
    """One critical condition reported to the admin by mail (bridge.ops.error_reports): when it was first and last
    seen, when a report about it last went out, and whether its recovery was reported. A recurrence
    after a reported recovery starts the row afresh."""

    __tablename__ = "alert_state"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=300)  # e.g. smtp:office, imap:box, oauth:smtp:office
    title: str
    detail: str  # the diagnosis and hint, never a secret
    first_seen: dt.datetime = Field(default_factory=utcnow)
    last_seen: dt.datetime = Field(default_factory=utcnow)
    last_reported_at: dt.datetime | None = None
    reported_problem: bool = False  # a problem (or still-open) report about this occurrence went out
    recovered_at: dt.datetime | None = None
    recovery_reported: bool = False


class AuditEvent(SQLModel, table=True):
    """One action a person (or a token, or a command) took: who, when, what, on which record. Never
    content: a message is named by its id, a candidate by a keyed hash of the address (bridge.audit)."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=300)  # "employee 1042 (ana@example.com)", "token ats", "command (root)"
    action: str = Field(max_length=64, index=True)  # assign, dismiss, erase, sign_in, settings ...
    target: str | None = Field(default=None, max_length=300)  # "message 17", "smtp office", "candidate 3f2a…"
    detail: str | None = None


class RetentionTally(SQLModel, table=True):
    """What the retention job removed, counted per day the records were made and per outcome: the Mail
    Log's and the inbox's history still adds up after their content is gone."""

    __tablename__ = "retention_tally"

    day: dt.date = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=32)  # inbound | outbound | dismissed | webhook | audit
    outcome: str = Field(primary_key=True, max_length=64)  # a route or a Mail Log status
    count: int = 0


class ErasureReceipt(SQLModel, table=True):
    """Proof that one candidate's data was erased: who, when, what kinds and how many, never content.
    The address is kept only as a keyed hash, so `candidate erase` can say it was done before."""

    __tablename__ = "erasure_receipt"

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=300)
    address_hash: str = Field(max_length=64, index=True)
    counts: str = "{}"  # JSON: kind -> number removed
    imap: str = "{}"  # JSON: "server/folder" -> copies deleted (empty without --from-imap)


class LoopProbe(SQLModel, table=True):
    """The scheduled loop probe of one alias (bridge.ops.loop_probes): when the last one started (the next is
    due `loop_probe_hours` after it, across restarts), how it ended, and the lease of the process probing now."""

    __tablename__ = "loop_probe"

    alias_id: int = Field(primary_key=True, foreign_key="alias.id", ondelete="CASCADE")
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    ok: bool | None = None
    broken_leg: str | None = None
    detail: str | None = None  # the diagnosis and what to check, never a secret
    message_id: str | None = Field(default=None, max_length=998)  # the last probe's: its stored copy goes later
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None
