"""The "Sign in with Microsoft / Google" buttons: the authorization code flow with PKCE and `state`.

POST /oauth/start/{kind}/{id} (an admin's form, CSRF-checked) keeps `state`, the PKCE verifier and the
account in the signed session cookie and sends the browser to the provider. The provider sends it back
to GET /oauth/callback on this bridge's own URL (built from the request, so any host and port work),
where the `state` must be the one this browser started with before the code is exchanged for tokens.
The messages that waited for the sign-in are queued again by bridge.accounts.oauth.flows.

Content-Security-Policy: Chromium applies `form-action` to the redirects that follow a form submission,
so the 303 from /oauth/start to the provider is blocked under `form-action 'self'`. The pages that show
a sign-in button therefore allow their forms to go on to that provider's sign-in origin, and only that
origin (`allow_sign_in`); every other page keeps `form-action 'self'`. This keeps the button a POST
with its CSRF token rather than a link that starts a sign-in on any GET.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from bridge import audit
from bridge.accounts import imap_servers, smtp_accounts
from bridge.accounts.oauth import flows, providers
from bridge.accounts.oauth.status import SignInState
from bridge.errors import InputError, NotFound
from bridge.web import auth
from bridge.web.admin import forms
from bridge.web.deps import db
from bridge.web.error_page import error_page
from bridge.web.security_headers import CSP
from bridge.web.templating import flash
from models import ImapServer, SmtpAccount

router = APIRouter(dependencies=[Depends(auth.require_admin)])
KEY = "oauth_sign_in"  # the session entry of the sign-in under way (one at a time per browser)
LIFETIME_S = 15 * 60  # a sign-in not finished by then is refused at the callback
_BACK = re.compile(r"/admin/(smtp|imap|aliases)/\d+")


def allow_sign_in(response: Response, states: Iterable[SignInState | None]) -> Response:
    """Let this page's sign-in buttons reach their providers (see the module's note on form-action)."""
    origins = sorted({s.origin for s in states if s is not None and s.button and s.origin})
    if origins:
        response.headers["Content-Security-Policy"] = CSP.replace(
            "form-action 'self'", "form-action 'self' " + " ".join(origins))
    return response


def redirect_uri(request: Request) -> str:
    """This bridge's callback URL as the browser reaches it (register it with the provider's app)."""
    return str(request.base_url).rstrip("/") + "/oauth/callback"


def _account(session: Session, kind: str, account_id: int) -> SmtpAccount | ImapServer:
    if kind == "smtp":
        return smtp_accounts.smtp_by_id(session, account_id)
    if kind == "imap":
        return imap_servers.imap_by_id(session, account_id)
    raise NotFound(f"no account kind {kind!r} (smtp or imap)")


@router.post("/oauth/start/{kind}/{account_id}", dependencies=[Depends(auth.check_csrf)])
def start(request: Request, kind: str, account_id: int, values: dict[str, str] = Depends(forms.form_values),
          session: Session = Depends(db)) -> Response:
    account = _account(session, kind, account_id)
    back = values.get("back", "")
    back = back if _BACK.fullmatch(back) else f"/admin/{kind}/{account_id}"
    engine = request.app.state.engine
    try:
        target = flows.target(engine, kind, account.name)
        url, state, verifier = flows.authorization_url(target, redirect_uri(request))
    except InputError as err:
        flash(request, f"Nothing to sign in: {err}")
        return RedirectResponse(back, status_code=303)
    request.session[KEY] = {"state": state, "verifier": verifier, "kind": kind, "id": account_id, "back": back,
                            "redirect_uri": redirect_uri(request), "at": time.time()}
    return RedirectResponse(url, status_code=303)


def _refused(request: Request) -> Response:
    return error_page(request, 400, "Sign-in refused",
                      "This sign-in expired or was forged: it is not the one this browser started, so nothing "
                      "changed. Press the sign-in button on the account's page again.")


@router.get("/oauth/callback")
def callback(request: Request, state: str = "", code: str = "", error: str = "",
             session: Session = Depends(db)) -> Response:
    pending = request.session.get(KEY)
    if (not isinstance(pending, dict) or not state or not hmac.compare_digest(state, str(pending.get("state")))
            or time.time() - float(pending.get("at", 0)) > LIFETIME_S):
        return _refused(request)
    del request.session[KEY]  # one use: a replayed callback is refused
    kind, account_id, back = pending["kind"], int(pending["id"]), pending["back"]
    if kind not in providers.KINDS:
        return _refused(request)
    if error or not code:
        if error == "access_denied":
            flash(request, "The sign-in was declined at the provider (access_denied): nothing changed")
        else:
            flash(request, f"The provider refused the sign-in ({error or 'no code'}): nothing changed")
        return RedirectResponse(back, status_code=303)
    account = _account(session, kind, account_id)
    name = account.name
    engine = request.app.state.engine
    try:
        target = flows.target(engine, kind, name)
        flows.finish_authorization(engine, target, pending["redirect_uri"], code, pending["verifier"])
    except (flows.SignInFailed, InputError) as err:
        flash(request, f"Not signed in: {err}")
        return RedirectResponse(back, status_code=303)
    audit.record(session, "account", f"{kind} {name}", "signed in with OAuth")
    flash(request, f"Signed in: the {kind} account {name!r} now uses OAuth tokens")
    return RedirectResponse(back, status_code=303)
