"""/admin/smtp: SMTP accounts, listed, added, edited and tried with Test connection; signed in with a password
or an OAuth client (then the edit page shows the sign-in state and the provider's sign-in button)."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from bridge.accounts import servers, smtp_accounts
from bridge.accounts.oauth.status import sign_in_state
from bridge.checks.connection_check import check_smtp
from bridge.errors import InputError
from bridge.net.connections import SECURITY_MODES
from bridge.web import auth
from bridge.web.admin import forms
from bridge.web.deps import db
from bridge.web.oauth_signin import allow_sign_in
from bridge.web.templating import flash, render
from models import SmtpAccount

router = forms.admin_router()
NEW = {"port": "587", "security": "starttls", "timeout": "30", "signin": "password", "oauth_flow": "delegated"}


def values_of(session: Session, a: SmtpAccount) -> dict[str, str]:
    """An account as its edit form shows it (the password is never among them)."""
    return {**forms.oauth_values(session, a),
            "name": a.name, "host": a.host, "port": str(a.port), "security": a.security, "username": a.username or "",
            "timeout": forms.seconds(a.timeout), "ca_file": a.ca_file or "", "is_default": "1" if a.is_default else "",
            "provider_files_sent": "1" if a.provider_files_sent else ""}


def server_fields(values: dict[str, str]) -> servers.ServerFields:
    """The shared server fields as typed; an empty password is no password (on edit: keep the stored one)."""
    return servers.ServerFields(forms.text(values, "name"), forms.text(values, "host"),
                                 forms.port(values), forms.text(values, "security"),
                                 forms.optional(values, "username"), values.get("password") or None,
                                 forms.number(values, "timeout", "timeout"), forms.optional(values, "ca_file"))


def _list(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
          status_code: int = 200) -> Response:
    rows = session.exec(select(SmtpAccount).order_by(SmtpAccount.name)).all()
    states = {a.id: sign_in_state(session, "smtp", a) for a in rows}
    return render(request, session, "admin/smtp.html",
                  {"title": "SMTP accounts", "rows": rows, "states": states, "values": values, "errors": errors,
                   "modes": [(m, m) for m in SECURITY_MODES], **forms.oauth_choices(session)},
                  status_code=status_code)


def _edit(request: Request, session: Session, account: SmtpAccount, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None, report: list[str] | None = None, ok: bool = True,
          status_code: int = 200) -> Response:
    state = sign_in_state(session, "smtp", account)
    response = render(request, session, "admin/smtp_edit.html",
                      {"title": f"SMTP account {account.name}", "account": account, "sign_in": state,
                       "values": values_of(session, account) if values is None else values, "errors": errors or {},
                       "report": report, "ok": ok, "modes": [(m, m) for m in SECURITY_MODES],
                       **forms.oauth_choices(session)}, status_code=status_code)
    return allow_sign_in(response, [state])


@router.get("/smtp")
def smtp_list(request: Request, session: Session = Depends(db)) -> Response:
    return _list(request, session, dict(NEW), {})


@router.post("/smtp", dependencies=[Depends(auth.check_csrf)])
def smtp_add(request: Request, values: dict[str, str] = Depends(forms.form_values),
             session: Session = Depends(db)) -> Response:
    try:
        choice = forms.sign_in_choice(values)
        account = smtp_accounts.add_smtp(session, server_fields(values), is_default=forms.checked(values, "is_default"),
                                    provider_files_sent=forms.checked(values, "provider_files_sent"),
                                    oauth=choice.client, oauth_flow=choice.flow)
    except InputError as err:
        return _list(request, session, forms.kept(values), forms.refused(session, err), status_code=422)
    name, account_id = account.name, account.id
    session.commit()
    if choice.client is not None and choice.flow == "delegated":  # the next step is on its page
        flash(request, forms.with_notes(f"SMTP account {name!r} added: sign it in with the button below",
                                        server_fields(values), "smtp"))
        return RedirectResponse(f"/admin/smtp/{account_id}", status_code=303)
    flash(request, forms.with_notes(f"SMTP account {name!r} added", server_fields(values), "smtp"))
    return RedirectResponse("/admin/smtp", status_code=303)


@router.get("/smtp/{account_id}")
def smtp_edit(request: Request, account_id: int, session: Session = Depends(db)) -> Response:
    return _edit(request, session, smtp_accounts.smtp_by_id(session, account_id))


@router.post("/smtp/{account_id}", dependencies=[Depends(auth.check_csrf)])
def smtp_update(request: Request, account_id: int, values: dict[str, str] = Depends(forms.form_values),
                session: Session = Depends(db)) -> Response:
    account = smtp_accounts.smtp_by_id(session, account_id)
    try:
        choice = forms.sign_in_choice(values)
        forms.password_first(session, "smtp", account, choice)
        smtp_accounts.update_smtp(session, account_id, server_fields(values),
                             is_default=forms.checked(values, "is_default"),
                             provider_files_sent=forms.checked(values, "provider_files_sent"))
        forms.oauth_after(session, "smtp", account, choice)
    except InputError as err:
        errors = forms.refused(session, err)
        return _edit(request, session, account, forms.kept(values), errors, status_code=422)
    name = account.name
    session.commit()
    flash(request, forms.with_notes(f"SMTP account {name!r} saved", server_fields(values), "smtp"))
    return RedirectResponse(f"/admin/smtp/{account_id}", status_code=303)


@router.post("/smtp/{account_id}/test", dependencies=[Depends(auth.check_csrf)])
def smtp_test(request: Request, account_id: int, session: Session = Depends(db)) -> Response:
    """Connect, TLS, AUTH, MAIL FROM as a real send would; the page shows the CLI's lines."""
    account = smtp_accounts.smtp_by_id(session, account_id)
    report = check_smtp(session, account)
    return _edit(request, session, account, report=report.lines(), ok=report.ok)
