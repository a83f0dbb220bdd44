"""/admin/oauth: the OAuth clients (applications registered with Microsoft, Google or another provider)
that SMTP accounts and IMAP servers sign in with; listed and added, as `replybridge oauth add|list`.

The client secret is write-only: the page says whether one is set, and a refused form never sends it back.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from bridge.accounts.oauth import clients, providers
from bridge.errors import FieldError, InputError
from bridge.web import auth
from bridge.web.admin import forms
from bridge.web.deps import db
from bridge.web.oauth_signin import redirect_uri
from bridge.web.templating import flash, render
from models import ImapServer, OAuthClient, SmtpAccount

router = forms.admin_router()
NEW = {"provider": "microsoft"}
PROVIDER_OPTIONS = [("microsoft", "microsoft: Microsoft 365 / Outlook"), ("google", "google: Google Workspace / Gmail"),
                    ("generic", "generic: any provider, by its URLs")]
WRITE_ONLY = ("client_secret", "service_account_key")


def _used_by(session: Session) -> dict[int, list[str]]:
    """Client id -> the accounts that sign in with it ("smtp office", "imap box")."""
    used: dict[int, list[str]] = {}
    for kind, model in (("smtp", SmtpAccount), ("imap", ImapServer)):
        for client_id, name in session.exec(select(model.oauth_client_id, model.name)
                                            .where(model.oauth_client_id.is_not(None)).order_by(model.name)):
            used.setdefault(client_id, []).append(f"{kind} {name}")
    return used


def _list(request: Request, session: Session, values: dict[str, str], errors: dict[str, str],
          status_code: int = 200) -> Response:
    rows = [(c.id, clients.client_json(c)) for c in session.exec(select(OAuthClient).order_by(OAuthClient.name))]
    return render(request, session, "admin/oauth.html",
                  {"title": "OAuth clients", "rows": rows, "used_by": _used_by(session), "values": values,
                   "errors": errors, "providers": PROVIDER_OPTIONS, "redirect_uri": redirect_uri(request)},
                  status_code=status_code)


def _checked(values: dict[str, str]) -> None:
    """Refusals tied to their field before clients.add_client repeats them (it names CLI options only)."""
    if not forms.text(values, "name"):
        raise FieldError("name", "an OAuth client needs a name")
    if forms.text(values, "provider") not in providers.PROVIDERS:
        raise FieldError("provider", f"provider is not one of: {', '.join(providers.PROVIDERS)}")
    if forms.text(values, "service_account_key"):
        if forms.text(values, "provider") != "google":
            raise FieldError("service_account_key", "a service account key is for the google provider")
        if forms.text(values, "client_id") or values.get("client_secret"):
            raise FieldError("service_account_key", "with a service account key, leave Client ID and Client secret "
                                                    "empty: the key holds both")
    elif not forms.text(values, "client_id"):
        raise FieldError("client_id", "an OAuth client needs a Client ID: the application id the provider gave")
    for field, label in (("authorize_url", "Authorize URL"), ("token_url", "Token URL"),
                         ("device_url", "Device URL")):
        value = forms.text(values, field)
        parts = urlsplit(value)
        if value and (parts.scheme not in ("https", "http") or not parts.hostname):
            raise FieldError(field, f"{label} {value!r} is not an http(s) URL")
    if forms.text(values, "provider") == "generic":
        for field, label in (("authorize_url", "Authorize URL"), ("token_url", "Token URL")):
            if not forms.text(values, field):
                raise FieldError(field, f"a generic provider needs the {label}")


@router.get("/oauth")
def oauth_list(request: Request, session: Session = Depends(db)) -> Response:
    return _list(request, session, dict(NEW), {})


@router.post("/oauth", dependencies=[Depends(auth.check_csrf)])
def oauth_add(request: Request, values: dict[str, str] = Depends(forms.form_values),
              session: Session = Depends(db)) -> Response:
    try:
        _checked(values)
        client = clients.add_client(
            session, forms.text(values, "name"), forms.text(values, "provider"), forms.optional(values, "client_id"),
            client_secret=values.get("client_secret") or None, tenant=forms.optional(values, "tenant"),
            scopes=forms.text(values, "scopes").split(), authorize_url=forms.optional(values, "authorize_url"),
            token_url=forms.optional(values, "token_url"), device_url=forms.optional(values, "device_url"),
            service_account_key=forms.optional(values, "service_account_key"))
    except InputError as err:
        shown = {k: v for k, v in forms.kept(values).items() if k not in WRITE_ONLY}
        return _list(request, session, shown, forms.refused(session, err), status_code=422)
    name = client.name
    session.commit()
    flash(request, f"OAuth client {name!r} added: choose it as the OAuth client of an SMTP account or IMAP server")
    return RedirectResponse("/admin/oauth", status_code=303)
