"""/admin/aliases: employees' sending identities, with their SMTP account and linked IMAP server (and, for
OAuth accounts, their sign-in state and button on the alias's page)."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from bridge.accounts import aliases, removal
from bridge.accounts.oauth.status import SignInState, sign_in_state
from bridge.accounts.smtp_accounts import default_smtp
from bridge.checks.connection_check import Report, check_imap, check_smtp
from bridge.errors import InputError, NotFound
from bridge.web import auth
from bridge.web.admin import forms, removal_pages
from bridge.web.deps import db
from bridge.web.oauth_signin import allow_sign_in
from bridge.web.templating import flash, render
from models import Alias, Employee, ImapServer, SmtpAccount

router = forms.admin_router()
NEW = {"delay_ms": "0"}


def values_of(session: Session, a: Alias) -> dict[str, str]:
    shown = aliases.alias_json(session, a)
    return {"employee": str(shown["employee_number"]), "description": a.description, "display_name": a.display_name,
            "from_address": a.from_address, "reply_to": a.reply_to or "", "smtp": str(shown["smtp"] or ""),
            "imap": str(shown["imap"] or ""), "is_default": "1" if a.is_default else "", "delay_ms": str(a.delay_ms)}


def _fields(values: dict[str, str]) -> aliases.AliasFields:
    return aliases.AliasFields(
        employee_number=forms.integer(values, "employee", "employee number"),
        description=forms.text(values, "description"), display_name=forms.text(values, "display_name"),
        from_address=forms.text(values, "from_address"), reply_to=forms.optional(values, "reply_to"),
        smtp=forms.optional(values, "smtp"), imap=forms.optional(values, "imap"),
        is_default=forms.checked(values, "is_default"), delay_ms=forms.integer(values, "delay_ms", "delay"))


def _choices(session: Session) -> dict[str, object]:
    """The selects: employees by number, the database-wide account or a named one, no IMAP server or one."""
    employees = session.exec(select(Employee).order_by(Employee.number)).all()
    smtp = session.exec(select(SmtpAccount.name).order_by(SmtpAccount.name)).all()
    imap = session.exec(select(ImapServer.name).order_by(ImapServer.name)).all()
    return {"employee_options": [(str(e.number), f"{e.number} {e.name}") for e in employees],
            "smtp_options": [("", "Database-wide account"), *((n, n) for n in smtp)],
            "imap_options": [("", "None"), *((n, n) for n in imap)]}


def _list(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
          status_code: int = 200) -> Response:
    rows = [(a.id, aliases.alias_json(session, a)) for a in session.exec(select(Alias).order_by(Alias.description))]
    return render(request, session, "admin/aliases.html",
                  {"title": "Aliases", "rows": rows, "values": values, "errors": errors, **_choices(session)},
                  status_code=status_code)


def _alias(session: Session, alias_id: int) -> Alias:
    alias = session.get(Alias, alias_id)
    if alias is None:
        raise NotFound(f"no alias with id {alias_id}")
    return alias


def _sign_ins(session: Session, alias: Alias) -> list[tuple[str, SignInState]]:
    """The OAuth sign-in states of the accounts this alias sends (and files) through, with a heading each."""
    smtp = session.get(SmtpAccount, alias.smtp_account_id) if alias.smtp_account_id else default_smtp(session)
    imap = session.get(ImapServer, alias.imap_server_id) if alias.imap_server_id else None
    found = [(f"SMTP account {smtp.name}: OAuth sign-in", sign_in_state(session, "smtp", smtp)) if smtp else None,
             (f"IMAP server {imap.name}: OAuth sign-in", sign_in_state(session, "imap", imap)) if imap else None]
    return [(title, state) for title, state in filter(None, found) if state is not None]


def _edit(request: Request, session: Session, alias: Alias, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None, status_code: int = 200,
          reports: list[tuple[str, Report]] | None = None) -> Response:
    sign_ins = _sign_ins(session, alias)
    response = render(request, session, "admin/alias_edit.html",
                      {"title": f"Alias {alias.description}", "alias": alias, "sign_ins": sign_ins,
                       "values": values_of(session, alias) if values is None else values, "errors": errors or {},
                       "reports": [(title, r.lines(), r.ok) for title, r in reports or []],
                       **_choices(session)}, status_code=status_code)
    return allow_sign_in(response, [state for _, state in sign_ins])


@router.get("/aliases")
def alias_list(request: Request, session: Session = Depends(db)) -> Response:
    return _list(request, session, dict(NEW), {})


@router.post("/aliases", dependencies=[Depends(auth.check_csrf)])
def alias_add(request: Request, values: dict[str, str] = Depends(forms.form_values),
              session: Session = Depends(db)) -> Response:
    try:
        f = _fields(values)
        alias = aliases.add_alias(session, employee_number=f.employee_number, description=f.description,
                                   display_name=f.display_name, from_address=f.from_address, reply_to=f.reply_to,
                                   smtp=f.smtp, imap=f.imap, is_default=f.is_default, delay_ms=f.delay_ms)
    except InputError as err:
        return _list(request, session, forms.kept(values), forms.refused(session, err), status_code=422)
    description = alias.description
    session.commit()
    flash(request, f"Alias {description!r} added")
    return RedirectResponse("/admin/aliases", status_code=303)


@router.get("/aliases/{alias_id}")
def alias_edit(request: Request, alias_id: int, session: Session = Depends(db)) -> Response:
    return _edit(request, session, _alias(session, alias_id))


ALIAS_CONSEQUENCE = ("Its sent mail stays in the Mail Log with the From it went out with. An alias with mail "
                     "waiting to go out through it cannot be removed until that mail has gone.")


@router.get("/aliases/{alias_id}/remove")
def alias_remove_confirm(request: Request, alias_id: int, session: Session = Depends(db)) -> Response:
    alias = _alias(session, alias_id)
    return removal_pages.confirm(request, session, noun="alias", name=alias.description,
                                 action=f"/admin/aliases/{alias_id}/remove", back=f"/admin/aliases/{alias_id}",
                                 consequence=ALIAS_CONSEQUENCE)


@router.post("/aliases/{alias_id}/remove", dependencies=[Depends(auth.check_csrf)])
def alias_remove(request: Request, alias_id: int, session: Session = Depends(db)) -> Response:
    description = _alias(session, alias_id).description
    return removal_pages.remove(request, session, lambda: removal.remove_alias(session, description), noun="alias",
                                name=description, action=f"/admin/aliases/{alias_id}/remove",
                                back=f"/admin/aliases/{alias_id}", listing="/admin/aliases",
                                consequence=ALIAS_CONSEQUENCE)


@router.post("/aliases/{alias_id}/test", dependencies=[Depends(auth.check_csrf)])
def alias_test(request: Request, alias_id: int, session: Session = Depends(db)) -> Response:
    """Test connection as the alias sends: its SMTP account (or the database-wide one) with MAIL FROM its
    employee's numbered address, and its linked IMAP server's Sent folder."""
    alias = _alias(session, alias_id)
    employee = session.get(Employee, alias.employee_id)
    smtp = session.get(SmtpAccount, alias.smtp_account_id) if alias.smtp_account_id else default_smtp(session)
    reports: list[tuple[str, Report]] = []
    if smtp is None:
        reports.append(("SMTP", Report(ok=False, diagnosis="no SMTP account: the alias has none and there is no "
                                       "database-wide account", hint="choose one below, or add a database-wide "
                                       "account")))
    else:
        reports.append((f"SMTP account {smtp.name}", check_smtp(session, smtp, employee.number)))
    if alias.imap_server_id:
        server = session.get(ImapServer, alias.imap_server_id)
        reports.append((f"IMAP server {server.name} (Sent folder)", check_imap(session.get_bind(), server)))
    return _edit(request, session, alias, reports=reports)


@router.post("/aliases/{alias_id}", dependencies=[Depends(auth.check_csrf)])
def alias_update(request: Request, alias_id: int, values: dict[str, str] = Depends(forms.form_values),
                 session: Session = Depends(db)) -> Response:
    alias = _alias(session, alias_id)
    try:
        aliases.update_alias(session, alias_id, _fields(values))
    except InputError as err:
        errors = forms.refused(session, err)
        return _edit(request, session, alias, forms.kept(values), errors, status_code=422)
    description = alias.description
    session.commit()
    flash(request, f"Alias {description!r} saved")
    return RedirectResponse(f"/admin/aliases/{alias_id}", status_code=303)
