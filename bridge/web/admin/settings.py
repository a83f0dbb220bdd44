"""/admin/settings: the portal settings of bridge/portal.py, set with the same checks as `settings set`."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from bridge import portal
from bridge.checks.connection_check import Report
from bridge.errors import InputError
from bridge.ops.error_reports import report_mail
from bridge.web import auth
from bridge.web.admin import forms
from bridge.web.deps import db
from bridge.web.templating import flash, render
from models import Setting

LABELS = {
    "reply_address": "Reply address template",
    "reply_address_alternates": "Accepted alternates",
    "sender_mode": "Sender mode",
    "portal_url": "Portal URL",
    "mailer_name": "Mailer name",
    "accepted_domains": "Accepted domains",
    "retry_delays": "Retry delays (s)",
    "acknowledgement": "Acknowledgement",
    "keep_inbound_days": "Keep received mail (days)",
    "keep_mail_log_days": "Keep Mail Log entries (days)",
    "keep_dismissed_days": "Keep dismissed messages (days)",
    "keep_audit_days": "Keep audit log (days)",
}
CHOICES = {"sender_mode": [("from", "from: numbered From address"),
                           ("reply-to", "reply-to: alias From, numbered Reply-To")]}
LONG = {"acknowledgement"}
LISTS = portal.LIST_KEYS | {"retry_delays"}

router = forms.admin_router()


def _as_text(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def shown(session: Session) -> dict[str, str]:
    """Every key as the form shows it: lists comma-separated, as `settings set` takes them."""
    display = portal.load(session).display()
    stored = {row.key: row.value for row in session.exec(select(Setting))}
    return {key: _as_text(display[key]) if key in display else stored.get(key, default)
            for key, (default, _check, _desc) in portal.KEYS.items()}


def _fields() -> list[dict[str, object]]:
    return [{"key": key, "label": LABELS.get(key, key.replace("_", " ").capitalize()),
             "hint": description + (" Comma-separated." if key in LISTS and "comma" not in description else ""),
             "choices": CHOICES.get(key), "long": key in LONG}
            for key, (_default, _check, description) in portal.KEYS.items()]


def _page(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
          status_code: int = 200, report: Report | None = None) -> Response:
    return render(request, session, "admin/settings.html",
                  {"title": "Settings", "fields": _fields(), "values": values, "errors": errors,
                   "report": report.lines() if report else None, "ok": report.ok if report else True},
                  status_code=status_code)


@router.get("/settings")
def settings_page(request: Request, session: Session = Depends(db)) -> Response:
    return _page(request, session, shown(session), {})


@router.post("/settings/test-report", dependencies=[Depends(auth.check_csrf)])
def settings_test_report(request: Request, session: Session = Depends(db)) -> Response:
    """The settings page's "Send test report": report_mail.send_sample, its lines shown on the page."""
    return _page(request, session, shown(session), {}, report=report_mail.send_sample(session.get_bind()))


@router.post("/settings", dependencies=[Depends(auth.check_csrf)])
def settings_save(request: Request, values: dict[str, str] = Depends(forms.form_values),
                  session: Session = Depends(db)) -> Response:
    """Store the changed keys, each through portal.set_setting; one bad value stores none of them."""
    current = shown(session)
    errors: dict[str, str] = {}
    changed = []
    for key in portal.KEYS:
        if key not in values or values[key].strip() == current[key].strip():
            continue
        try:
            portal.set_setting(session, key, values[key])
            changed.append(key)
        except InputError as err:
            errors[key] = str(err)
    if errors:
        session.rollback()
        return _page(request, session, forms.kept(values), errors, status_code=422)
    session.commit()
    flash(request, f"Settings saved: {', '.join(LABELS.get(k, k) for k in changed)}" if changed
          else "Nothing changed")
    return RedirectResponse("/admin/settings", status_code=303)
