"""The body the SMTP-account and IMAP-server admin pages share: list, add, edit, save and Test connection,
each signed in with a password or an OAuth client (then the edit page shows the sign-in state and the
provider's sign-in button). Each page module (smtp.py, imap.py) only describes what differs: a `Kind`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from bridge.accounts.oauth.status import sign_in_state
from bridge.accounts.servers import ServerFields
from bridge.checks.connection_check import Report
from bridge.errors import InputError
from bridge.net.connections import SECURITY_MODES
from bridge.web import auth
from bridge.web.admin import forms, removal_pages
from bridge.web.deps import db
from bridge.web.oauth_signin import allow_sign_in
from bridge.web.templating import flash, render
from models import ImapServer, SmtpAccount

Server = SmtpAccount | ImapServer


@dataclass(frozen=True)
class Kind:
    """What an SMTP account's pages and an IMAP server's pages do differently."""

    name: str  # smtp | imap: the URL segment, the templates' prefix and the sign-in kind
    noun: str  # "SMTP account": in titles and messages
    record: str  # the templates' name for the record: account | server
    model: type[SmtpAccount] | type[ImapServer]
    new: dict[str, str]  # the add form's defaults
    extra_values: Callable[[Any], dict[str, str]]  # this kind's own fields as its edit form shows them
    options: Callable[[dict[str, str]], dict[str, object]]  # the same fields as typed, for add and update
    add: Callable[..., Any]  # bridge.accounts: add_smtp | add_imap
    update: Callable[..., Any]
    by_id: Callable[[Session, int], Any]
    check: Callable[[Session, Any, dict[str, str]], Report]  # Test connection (the form's values: send_to)
    remove: Callable[[Session, str], None] = lambda _session, _name: None  # bridge.accounts.removal, by name
    consequence: str = ""  # what removing one does, on the confirmation page
    list_extra: Callable[[Session, list[Any]], dict[str, object]] = lambda _session, _rows: {}  # more for the list


def server_fields(values: dict[str, str]) -> ServerFields:
    """The shared server fields as typed; an empty password is no password (on edit: keep the stored one)."""
    return ServerFields(forms.text(values, "name"), forms.text(values, "host"), forms.port(values),
                        forms.text(values, "security"), forms.optional(values, "username"),
                        values.get("password") or None, forms.number(values, "timeout", "timeout"),
                        forms.optional(values, "ca_file"))


def values_of(session: Session, kind: Kind, r: Server) -> dict[str, str]:
    """A record as its edit form shows it (the password is never among them)."""
    return {**forms.oauth_values(session, r), "name": r.name, "host": r.host, "port": str(r.port),
            "security": r.security, "username": r.username or "", "timeout": forms.seconds(r.timeout),
            "ca_file": r.ca_file or "", **kind.extra_values(r)}


def _list(request: Request, session: Session, kind: Kind, values: dict[str, str], errors: dict[str, str],
          status_code: int = 200) -> Response:
    rows = session.exec(select(kind.model).order_by(kind.model.name)).all()
    states = {r.id: sign_in_state(session, kind.name, r) for r in rows}
    return render(request, session, f"admin/{kind.name}.html",
                  {"title": f"{kind.noun}s", "rows": rows, "states": states, "values": values, "errors": errors,
                   "modes": [(m, m) for m in SECURITY_MODES], **forms.oauth_choices(session),
                   **kind.list_extra(session, rows)},
                  status_code=status_code)


def _edit(request: Request, session: Session, kind: Kind, r: Server, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None, report: list[str] | None = None, ok: bool = True,
          status_code: int = 200) -> Response:
    state = sign_in_state(session, kind.name, r)
    response = render(request, session, f"admin/{kind.name}_edit.html",
                      {"title": f"{kind.noun} {r.name}", kind.record: r, "sign_in": state,
                       "values": values_of(session, kind, r) if values is None else values, "errors": errors or {},
                       "report": report, "ok": ok, "modes": [(m, m) for m in SECURITY_MODES],
                       **forms.oauth_choices(session)}, status_code=status_code)
    return allow_sign_in(response, [state])


def pages(kind: Kind) -> APIRouter:
    """The five routes of one kind's pages, under /admin/{kind.name}."""
    router = forms.admin_router()
    base = f"/{kind.name}"

    @router.get(base, name=f"{kind.name}_list")
    def listed(request: Request, session: Session = Depends(db)) -> Response:
        return _list(request, session, kind, dict(kind.new), {})

    @router.post(base, name=f"{kind.name}_add", dependencies=[Depends(auth.check_csrf)])
    def added(request: Request, values: dict[str, str] = Depends(forms.form_values),
              session: Session = Depends(db)) -> Response:
        try:
            choice = forms.sign_in_choice(values)
            r = kind.add(session, server_fields(values), **kind.options(values), oauth=choice.client,
                         oauth_flow=choice.flow)
        except InputError as err:
            return _list(request, session, kind, forms.kept(values), forms.refused(session, err), status_code=422)
        name, record_id = r.name, r.id
        session.commit()
        if choice.client is not None and choice.flow == "delegated":  # the next step is on its page
            flash(request, forms.with_notes(f"{kind.noun} {name!r} added: sign it in with the button below",
                                            server_fields(values), kind.name))
            return RedirectResponse(f"/admin{base}/{record_id}", status_code=303)
        flash(request, forms.with_notes(f"{kind.noun} {name!r} added", server_fields(values), kind.name))
        return RedirectResponse(f"/admin{base}", status_code=303)

    @router.get(base + "/{record_id}", name=f"{kind.name}_edit")
    def edit(request: Request, record_id: int, session: Session = Depends(db)) -> Response:
        return _edit(request, session, kind, kind.by_id(session, record_id))

    @router.post(base + "/{record_id}", name=f"{kind.name}_update", dependencies=[Depends(auth.check_csrf)])
    def saved(request: Request, record_id: int, values: dict[str, str] = Depends(forms.form_values),
              session: Session = Depends(db)) -> Response:
        r = kind.by_id(session, record_id)
        try:
            choice = forms.sign_in_choice(values)
            forms.password_first(session, kind.name, r, choice)
            kind.update(session, record_id, server_fields(values), **kind.options(values))
            forms.oauth_after(session, kind.name, r, choice)
        except InputError as err:
            return _edit(request, session, kind, r, forms.kept(values), forms.refused(session, err), status_code=422)
        name = r.name
        session.commit()
        flash(request, forms.with_notes(f"{kind.noun} {name!r} saved", server_fields(values), kind.name))
        return RedirectResponse(f"/admin{base}/{record_id}", status_code=303)

    @router.get(base + "/{record_id}/remove", name=f"{kind.name}_remove_confirm")
    def remove_confirm(request: Request, record_id: int, session: Session = Depends(db)) -> Response:
        r = kind.by_id(session, record_id)
        return removal_pages.confirm(request, session, noun=kind.noun, name=r.name,
                                     action=f"/admin{base}/{record_id}/remove", back=f"/admin{base}/{record_id}",
                                     consequence=kind.consequence)

    @router.post(base + "/{record_id}/remove", name=f"{kind.name}_remove", dependencies=[Depends(auth.check_csrf)])
    def removed(request: Request, record_id: int, session: Session = Depends(db)) -> Response:
        r = kind.by_id(session, record_id)
        name = r.name
        return removal_pages.remove(request, session, lambda: kind.remove(session, name), noun=kind.noun, name=name,
                                    action=f"/admin{base}/{record_id}/remove", back=f"/admin{base}/{record_id}",
                                    listing=f"/admin{base}", consequence=kind.consequence)

    @router.post(base + "/{record_id}/test", name=f"{kind.name}_test", dependencies=[Depends(auth.check_csrf)])
    def tested(request: Request, record_id: int, values: dict[str, str] = Depends(forms.form_values),
               session: Session = Depends(db)) -> Response:
        """Test connection: the same steps a real send or append takes; the page shows the CLI's lines."""
        r = kind.by_id(session, record_id)
        try:
            report = kind.check(session, r, values)
        except InputError as err:
            report = Report(ok=False, diagnosis=str(err), hint="give an address the test message can go to")
        return _edit(request, session, kind, r, report=report.lines(), ok=report.ok)

    return router
