"""/admin/imap: IMAP servers (Sent folder, inbound polling), listed, added, edited and tried; signed in with a
password or an OAuth client (then the edit page shows the sign-in state and the provider's sign-in button)."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from bridge.accounts import imap_servers
from bridge.accounts.oauth.status import sign_in_state
from bridge.checks.connection_check import check_imap
from bridge.errors import InputError
from bridge.net.connections import SECURITY_MODES
from bridge.web import auth
from bridge.web.admin import forms
from bridge.web.admin.smtp import server_fields
from bridge.web.deps import db
from bridge.web.oauth_signin import allow_sign_in
from bridge.web.templating import flash, render
from models import ImapServer

router = forms.admin_router()
NEW = {"port": "993", "security": "ssl", "timeout": "30", "sent_folder": "auto", "poll_after": "seen",
       "signin": "password", "oauth_flow": "delegated"}


def values_of(session: Session, s: ImapServer) -> dict[str, str]:
    """A server as its edit form shows it (the password is never among them)."""
    return {**forms.oauth_values(session, s),
            "name": s.name, "host": s.host, "port": str(s.port), "security": s.security, "username": s.username,
            "timeout": forms.seconds(s.timeout), "ca_file": s.ca_file or "", "sent_folder": s.sent_folder,
            "poll_folder": s.poll_folder or "", "poll_after": s.poll_after}


def _options(values: dict[str, str]) -> dict[str, object]:
    return {"sent_folder": forms.text(values, "sent_folder") or "auto",
            "poll_folder": forms.optional(values, "poll_folder"),
            "poll_after": forms.text(values, "poll_after") or "seen"}


def _list(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
          status_code: int = 200) -> Response:
    rows = session.exec(select(ImapServer).order_by(ImapServer.name)).all()
    states = {s.id: sign_in_state(session, "imap", s) for s in rows}
    return render(request, session, "admin/imap.html",
                  {"title": "IMAP servers", "rows": rows, "states": states, "values": values, "errors": errors,
                   "modes": [(m, m) for m in SECURITY_MODES], **forms.oauth_choices(session)},
                  status_code=status_code)


def _edit(request: Request, session: Session, server: ImapServer, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None, report: list[str] | None = None, ok: bool = True,
          status_code: int = 200) -> Response:
    state = sign_in_state(session, "imap", server)
    response = render(request, session, "admin/imap_edit.html",
                      {"title": f"IMAP server {server.name}", "server": server, "sign_in": state,
                       "values": values_of(session, server) if values is None else values, "errors": errors or {},
                       "report": report, "ok": ok, "modes": [(m, m) for m in SECURITY_MODES],
                       **forms.oauth_choices(session)}, status_code=status_code)
    return allow_sign_in(response, [state])


@router.get("/imap")
def imap_list(request: Request, session: Session = Depends(db)) -> Response:
    return _list(request, session, dict(NEW), {})


@router.post("/imap", dependencies=[Depends(auth.check_csrf)])
def imap_add(request: Request, values: dict[str, str] = Depends(forms.form_values),
             session: Session = Depends(db)) -> Response:
    try:
        choice = forms.sign_in_choice(values)
        server = imap_servers.add_imap(session, server_fields(values), **_options(values), oauth=choice.client,
                                   oauth_flow=choice.flow)
    except InputError as err:
        return _list(request, session, forms.kept(values), forms.refused(session, err), status_code=422)
    name, server_id = server.name, server.id
    session.commit()
    if choice.client is not None and choice.flow == "delegated":  # the next step is on its page
        flash(request, forms.with_notes(f"IMAP server {name!r} added: sign it in with the button below",
                                        server_fields(values), "imap"))
        return RedirectResponse(f"/admin/imap/{server_id}", status_code=303)
    flash(request, forms.with_notes(f"IMAP server {name!r} added", server_fields(values), "imap"))
    return RedirectResponse("/admin/imap", status_code=303)


@router.get("/imap/{server_id}")
def imap_edit(request: Request, server_id: int, session: Session = Depends(db)) -> Response:
    return _edit(request, session, imap_servers.imap_by_id(session, server_id))


@router.post("/imap/{server_id}", dependencies=[Depends(auth.check_csrf)])
def imap_update(request: Request, server_id: int, values: dict[str, str] = Depends(forms.form_values),
                session: Session = Depends(db)) -> Response:
    server = imap_servers.imap_by_id(session, server_id)
    try:
        choice = forms.sign_in_choice(values)
        forms.password_first(session, "imap", server, choice)
        imap_servers.update_imap(session, server_id, server_fields(values), **_options(values))
        forms.oauth_after(session, "imap", server, choice)
    except InputError as err:
        errors = forms.refused(session, err)
        return _edit(request, session, server, forms.kept(values), errors, status_code=422)
    name = server.name
    session.commit()
    flash(request, forms.with_notes(f"IMAP server {name!r} saved", server_fields(values), "imap"))
    return RedirectResponse(f"/admin/imap/{server_id}", status_code=303)


@router.post("/imap/{server_id}/test", dependencies=[Depends(auth.check_csrf)])
def imap_test(request: Request, server_id: int, session: Session = Depends(db)) -> Response:
    """Connect, TLS, LOGIN, find the Sent (and poll) folder; the page shows the CLI's lines."""
    server = imap_servers.imap_by_id(session, server_id)
    report = check_imap(session.get_bind(), server)
    return _edit(request, session, server, report=report.lines(), ok=report.ok)
