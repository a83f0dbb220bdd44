"""/admin/smtp: SMTP accounts (the pages' body is server_pages.py; here what only SMTP accounts have: the
database-wide flag, a provider that files sent mail itself, and Test connection up to RCPT, or with a real
test message to an address the admin gives)."""

from __future__ import annotations

from bridge.accounts import removal, smtp_accounts
from bridge.checks.connection_check import check_smtp
from bridge.input_checks import check_address
from bridge.web.admin import forms
from bridge.web.admin.server_pages import Kind, pages
from models import SmtpAccount

KIND = Kind(
    name="smtp", noun="SMTP account", record="account", model=SmtpAccount,
    new={"port": "587", "security": "starttls", "timeout": "30", "signin": "password", "oauth_flow": "delegated"},
    extra_values=lambda a: {"is_default": "1" if a.is_default else "",
                            "provider_files_sent": "1" if a.provider_files_sent else "",
                            "from_name": a.from_name or "", "from_address": a.from_address or ""},
    options=lambda values: {"is_default": forms.checked(values, "is_default"),
                            "provider_files_sent": forms.checked(values, "provider_files_sent"),
                            "from_name": values.get("from_name", "").strip(),
                            "from_address": values.get("from_address", "").strip()},
    add=smtp_accounts.add_smtp, update=smtp_accounts.update_smtp, by_id=smtp_accounts.smtp_by_id,
    remove=removal.remove_smtp,
    consequence="Mail already sent keeps the account's name in the Mail Log. An account an alias uses cannot be "
                "removed: give the alias another account first.",
    check=lambda session, account, values: check_smtp(
        session, account, send_to=check_address(values["send_to"], "test message address")
        if values.get("send_to", "").strip() else None),
)
router = pages(KIND)
