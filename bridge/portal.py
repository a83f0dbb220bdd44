"""Portal settings: the keys, their defaults, and the checks a value must pass to be stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlmodel import Session, select

from bridge import audit
from bridge.errors import ConfigError, InputError
from bridge.input_checks import check_address
from models import Setting
from routing.addresses import NumberedAddresses, TemplateError, validate_template


def _template(value: str) -> str:
    try:
        validate_template(value)
    except TemplateError as e:
        raise InputError(str(e)) from None
    return value


def _list(item: Callable[[str], str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        items = [item(v.strip()) for v in value.split(",") if v.strip()]
        return json.dumps(items)
    return check


def _domain(value: str) -> str:
    value = value.lower().strip()
    if not value or "@" in value or " " in value or "." not in value:
        raise InputError(f"{value!r} is not a domain name")
    return value


def _sender_mode(value: str) -> str:
    if value not in ("from", "reply-to"):
        raise InputError("sender_mode is `from` (numbered From address) or `reply-to` (numbered Reply-To)")
    return value


def _url(value: str) -> str:
    parts = urlsplit(value)
    if value and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise InputError(f"portal_url {value!r} is not an http(s) URL")
    return value.rstrip("/")


def _mailer(value: str) -> str:
    if not value.strip():
        raise InputError("mailer_name cannot be empty")
    return value.strip()


def _text(value: str) -> str:
    return value.replace("\\n", "\n").strip()


def _delays(value: str) -> str:
    try:
        delays = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError("retry_delays is a comma-separated list of seconds, e.g. 60,300") from None
    if len(delays) != 2 or any(d < 0 for d in delays):
        raise InputError("retry_delays needs two non-negative numbers of seconds: before attempts 2 and 3")
    return ",".join(f"{d:g}" for d in delays)


def _on_off(value: str) -> str:
    word = value.strip().lower()
    if word in ("on", "yes", "true", "1"):
        return "on"
    if word in ("off", "no", "false", "0"):
        return "off"
    raise InputError("this setting is `on` or `off`")


def _days(key: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        if not value.isdigit() or not 1 <= int(value) <= 36_500:
            raise InputError(f"{key} is a number of days from 1 to 36500, or empty to keep everything")
        return str(int(value))
    return check


def _probe_hours(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    if not value.isdigit() or not 1 <= int(value) <= MAX_PROBE_HOURS:
        raise InputError(f"loop_probe_hours is a whole number of hours from 1 to {MAX_PROBE_HOURS} (e.g. 6: four "
                         "probes a day), or empty to turn the scheduled loop probe off")
    return str(int(value))


def _header_text(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise InputError("a mail header value cannot contain a line break")
    return value.strip()


def _authserv(value: str) -> str:
    value = value.strip().lower()
    if not value or any(c.isspace() or c in ";=" for c in value):
        raise InputError(f"{value!r} is not an authserv-id (the host name your receiving server writes first in "
                         "its Authentication-Results header, e.g. mx.example.com)")
    return value


def _optional_address(field: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        return check_address(value.strip(), field) if value.strip() else ""
    return check


def _report_subject(value: str) -> str:
    value = _header_text(value)
    if not value:
        raise InputError("report_subject cannot be empty")
    try:
        value.format(condition="x")
    except (KeyError, IndexError, ValueError):
        raise InputError("report_subject may use only the placeholder {condition}, e.g. "
                         "\"replybridge: {condition}\"") from None
    return value


MAX_PROBE_HOURS = 720  # 30 days


# key -> (default, validator returning the stored form, description)
KEYS: dict[str, tuple[str, Callable[[str], str], str]] = {
    "reply_address": ("", _template, "template of the numbered address, e.g. jobs+{number}@example.com"),
    "reply_address_alternates": ("[]", _list(_template), "older templates still recognised (comma-separated)"),
    "sender_mode": ("from", _sender_mode, "`from`: numbered From; `reply-to`: alias From, numbered Reply-To"),
    "portal_url": ("", _url, "the portal's URL, used by {portal_url} in bodies"),
    "mailer_name": ("replybridge", _mailer, "the X-Mailer header"),
    "accepted_domains": ("[]", _list(_domain), "domains whose addresses the bridge receives mail for"),
    "test_recipient": ("", _optional_address("test_recipient"), "an outside address Test connection tries RCPT "
                       "TO (then RSET) to catch relay refusals (empty: the last recipient of the account's mail)"),
    "retry_delays": ("60,300", _delays, "seconds before the 2nd and 3rd attempt after a temporary failure"),
    "acknowledgement": ("", _text, "text of the automatic answer to a new candidate's first message (empty: off)"),
    "acknowledge_unassigned": ("off", _on_off, "`on`: a new sender whose mail lands in Unassigned (an "
                               "application to careers@) gets the acknowledgement too, through the database-wide "
                               "account, under its own name and address"),
    "acknowledgement_subject": ("Thank you for your message", _header_text,
                                "the acknowledgement's subject: fixed, never the sender's (which may be spam)"),
    "trusted_authserv_ids": ("[]", _list(_authserv), "your receiving servers' authserv-ids: their "
                             "Authentication-Results are believed, and mail failing SPF, DKIM or DMARC gets no "
                             "acknowledgement"),
    "report_errors": ("off", _on_off, "`on`: mail critical conditions (and their recovery) to report_to"),
    "report_to_name": ("", _header_text, "the name of the error reports' recipient"),
    "report_to": ("", _optional_address("report_to"), "the address error reports go to"),
    "report_from": ("", _optional_address("report_from"),
                    "the error reports' From address (empty: the database-wide account's username)"),
    "report_subject": ("replybridge: {condition}", _report_subject, "subject of error reports; {condition} names it"),
    "webhook_private_targets": ("off", _on_off, "`on`: webhooks may go to loopback and private addresses (never to "
                                "link-local or cloud metadata ones)"),
    "keep_inbound_days": ("", _days("keep_inbound_days"), "days to keep received mail (its bytes, fields and "
                          "attachments) and the webhook events about it; empty: keep"),
    "keep_mail_log_days": ("", _days("keep_mail_log_days"), "days to keep the Mail Log's entries with the bytes "
                           "sent; empty: keep"),
    "keep_dismissed_days": ("", _days("keep_dismissed_days"), "days to keep dismissed Unassigned messages after "
                            "their dismissal; empty: keep (as other received mail)"),
    "keep_audit_days": ("", _days("keep_audit_days"), "days to keep the audit log; empty: keep"),
    "loop_probe_hours": ("", _probe_hours, "hours between the loop probes of each alias (`test loop`, run by `serve` "
                         "and `worker`), whose failure is an error report; empty: off"),
}
RETENTION_KEYS = ("keep_inbound_days", "keep_mail_log_days", "keep_dismissed_days", "keep_audit_days")
LIST_KEYS = {"reply_address_alternates", "accepted_domains", "trusted_authserv_ids"}


def canonical_key(key: str) -> str:
    name = key.replace("-", "_").lower()
    if name not in KEYS:
        raise InputError(f"unknown setting {key!r}; known: {', '.join(KEYS)}")
    return name


def set_setting(session: Session, key: str, value: str) -> str:
    """Validate and store one setting; returns the stored form."""
    name = canonical_key(key)
    stored = KEYS[name][1](value)
    row = session.get(Setting, name)
    before = row.value if row is not None else KEYS[name][0]
    if row is None:
        session.add(Setting(key=name, value=stored))
    else:
        row.value = stored
        session.add(row)
    if stored != before:  # a settings form saves every key: only the changed ones are actions
        audit.record(session, "settings", name, f"set to {stored[:200]!r}")
    return stored


@dataclass(frozen=True)
class PortalSettings:
    reply_address: str
    reply_address_alternates: tuple[str, ...]
    sender_mode: str
    portal_url: str
    mailer_name: str
    accepted_domains: tuple[str, ...]
    retry_delays: tuple[float, float]
    acknowledgement: str
    acknowledgement_subject: str = "Thank you for your message"
    trusted_authserv_ids: tuple[str, ...] = ()
    report_errors: bool = False
    report_to_name: str = ""
    report_to: str = ""
    report_from: str = ""
    report_subject: str = "replybridge: {condition}"
    webhook_private_targets: bool = False
    test_recipient: str = ""
    acknowledge_unassigned: bool = False
    # retention, in days (None: keep); bridge.privacy.retention applies them
    keep_inbound_days: int | None = None
    keep_mail_log_days: int | None = None
    keep_dismissed_days: int | None = None
    keep_audit_days: int | None = None
    loop_probe_hours: int | None = None  # None: no scheduled loop probe (bridge.ops.loop_probes)

    def numbered(self) -> NumberedAddresses:
        if not self.reply_address:
            raise ConfigError("no reply address template: run `replybridge settings set reply_address "
                              "jobs+{number}@example.com` (or `init --reply-address`)")
        return NumberedAddresses.from_strings(self.reply_address, self.reply_address_alternates)

    def display(self) -> dict[str, object]:
        return {
            "reply_address": self.reply_address,
            "reply_address_alternates": list(self.reply_address_alternates),
            "sender_mode": self.sender_mode,
            "portal_url": self.portal_url,
            "mailer_name": self.mailer_name,
            "accepted_domains": list(self.accepted_domains),
            "retry_delays": list(self.retry_delays),
            "acknowledgement": self.acknowledgement,
            "acknowledgement_subject": self.acknowledgement_subject,
            "trusted_authserv_ids": list(self.trusted_authserv_ids),
            "report_errors": "on" if self.report_errors else "off",
            "report_to_name": self.report_to_name,
            "report_to": self.report_to,
            "report_from": self.report_from,
            "report_subject": self.report_subject,
            "webhook_private_targets": "on" if self.webhook_private_targets else "off",
            "test_recipient": self.test_recipient,
            "acknowledge_unassigned": "on" if self.acknowledge_unassigned else "off",
            **{key: "" if getattr(self, key) is None else str(getattr(self, key)) for key in RETENTION_KEYS},
            "loop_probe_hours": "" if self.loop_probe_hours is None else str(self.loop_probe_hours),
        }


def load(session: Session) -> PortalSettings:
    stored = {row.key: row.value for row in session.exec(select(Setting))}
    raw = {key: stored.get(key, default) for key, (default, _check, _desc) in KEYS.items()}
    first, second = (float(v) for v in raw["retry_delays"].split(","))
    return PortalSettings(
        reply_address=raw["reply_address"],
        reply_address_alternates=tuple(json.loads(raw["reply_address_alternates"])),
        sender_mode=raw["sender_mode"],
        portal_url=raw["portal_url"],
        mailer_name=raw["mailer_name"],
        accepted_domains=tuple(json.loads(raw["accepted_domains"])),
        retry_delays=(first, second),
        acknowledgement=raw["acknowledgement"],
        acknowledgement_subject=raw["acknowledgement_subject"],
        trusted_authserv_ids=tuple(json.loads(raw["trusted_authserv_ids"])),
        report_errors=raw["report_errors"] == "on",
        report_to_name=raw["report_to_name"],
        report_to=raw["report_to"],
        report_from=raw["report_from"],
        report_subject=raw["report_subject"],
        webhook_private_targets=raw["webhook_private_targets"] == "on",
        test_recipient=raw["test_recipient"],
        acknowledge_unassigned=raw["acknowledge_unassigned"] == "on",
        **{key: int(raw[key]) if raw[key] else None for key in RETENTION_KEYS},
        loop_probe_hours=int(raw["loop_probe_hours"]) if raw["loop_probe_hours"] else None,
    )
