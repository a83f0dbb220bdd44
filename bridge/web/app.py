"""The web application: pages for recruiters and admins, the HTTP API under /api/v1, /healthz and /readyz.

Every page is server-rendered and works as plain form posts; the only script is our own static file,
allowed by a Content-Security-Policy with no inline script, which backs the HTML sanitizer: even a
tag that slipped through could neither run nor load anything from outside.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from bridge import crypto
from bridge.config.settings import current
from bridge.errors import NotFound
from bridge.web import (
    admin,
    auth,
    bulk_send,
    conversations,
    inbox,
    login,
    mail_log,
    message_view,
    metrics_page,
    oauth_signin,
    readiness,
    search_page,
)
from bridge.web.api import create_api
from bridge.web.body_limit import BodyLimit
from bridge.web.error_page import beyond_any_id, error_page
from bridge.web.security_headers import CSP


def secure_cookies() -> bool:
    """Behind HTTPS (the web_https setting) the session cookie is sent over HTTPS only."""
    return current().web_https


def _page_routers() -> list:
    return [login.router, inbox.router, message_view.router, conversations.router, mail_log.router,
            bulk_send.router, *admin.routers, oauth_signin.router, search_page.router]


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="replybridge", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.add_middleware(BodyLimit)
    app.add_middleware(SessionMiddleware, secret_key=crypto.signing_key("web-session").hex(),
                       session_cookie="replybridge_session", same_site="lax", https_only=secure_cookies(),
                       max_age=12 * 3600)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # noqa: ANN001, ANN202 - Starlette middleware
        response = await call_next(request)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        else:
            response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    _errors(app)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static")
    for router in _page_routers():
        app.include_router(router)

    app.mount("/api/v1", create_api(engine))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure: the database does not answer
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    app.include_router(readiness.router)  # /readyz: what is wrong, part by part (bridge.web.readiness)
    app.include_router(metrics_page.router)  # /metrics for Prometheus, no session (bridge.web.metrics_page)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(auth.SignInRequired)
    async def sign_in_required(request: Request, _exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(auth.Forbidden)
    async def forbidden(request: Request, exc: Exception) -> Response:
        return error_page(request, 403, "Not allowed", str(exc) or "You may not see this page.")

    @app.exception_handler(auth.CsrfRejected)
    async def csrf_rejected(request: Request, _exc: Exception) -> Response:
        return error_page(request, 403, "Form expired",
                          "The form was missing its security token, so nothing was changed. Reload the page and "
                          "try again.")

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: Exception) -> Response:
        if beyond_any_id(exc):
            return error_page(request, 404, "Not found", "There is no such page: ids are below 2^63.")
        return error_page(request, 422, "Not accepted", "The request holds a value the database cannot take; "
                          "nothing was changed.")

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: Exception) -> Response:
        return error_page(request, 404, "Not found", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_page(request, 404, "Not found", "There is no such page.")
        return error_page(request, exc.status_code, "Error", str(exc.detail))
