"""Errors of the HTTP API as JSON: 401 (with WWW-Authenticate), 403, 404, 409, 422.

401 comes first: a request without a valid token learns nothing else, not even whether a path
exists or whether its body was well-formed. A bad field gives FastAPI's usual 422 shape, `{"detail":
[{"loc": [...], "msg": ..., "type": ...}]}`, whether pydantic or the bridge found the problem, so
clients parse one shape; every other error is `{"detail": "..."}`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bridge.errors import BridgeError, ConfigError, FieldError, InputError, NotFound
from bridge.web.api import auth
from bridge.web.error_page import beyond_any_id


class ApiForbidden(Exception):
    """The token's employee may not touch this."""


class Conflict(Exception):
    """The thing exists but is not in a state that allows the action (e.g. assigning an assigned message)."""


class BadField(Exception):
    """Bad input in one named field: answered as 422 with `loc` naming it."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def field_problem(loc: tuple[str, ...], message: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": list(loc), "msg": message, "type": "value_error"}]}, status_code=422)


def _detail(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def unauthorized(message: str, invalid: bool) -> JSONResponse:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return _detail(401, message, {"WWW-Authenticate": challenge})


async def _refused(request: Request) -> JSONResponse | None:
    """The 401 answer when the request has no valid token; None when it has one."""
    try:
        await run_in_threadpool(auth.principal_of, request)
    except auth.Unauthorized as err:
        return unauthorized(str(err), err.invalid)
    except auth.TooManyFailures as err:
        return _detail(429, str(err), {"Retry-After": str(err.retry_after)})
    return None


def install(api: FastAPI) -> None:
    @api.exception_handler(auth.Unauthorized)
    async def _unauthorized(_request: Request, exc: auth.Unauthorized) -> JSONResponse:
        return unauthorized(str(exc), exc.invalid)

    @api.exception_handler(auth.TooManyFailures)
    async def _too_many(_request: Request, exc: auth.TooManyFailures) -> JSONResponse:
        return _detail(429, str(exc), {"Retry-After": str(exc.retry_after)})

    @api.exception_handler(ApiForbidden)
    async def _forbidden(_request: Request, exc: ApiForbidden) -> JSONResponse:
        return _detail(403, str(exc))

    @api.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return _detail(404, str(exc))

    @api.exception_handler(OverflowError)
    @api.exception_handler(DataError)
    async def _unstorable(_request: Request, exc: Exception) -> JSONResponse:
        if beyond_any_id(exc):
            return _detail(404, "no such id: ids are below 2^63")
        return _detail(422, "the request holds a value the database cannot take; nothing was changed")

    @api.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return _detail(409, str(exc))

    @api.exception_handler(BadField)
    async def _field(_request: Request, exc: BadField) -> JSONResponse:
        return field_problem(exc.loc, str(exc))

    @api.exception_handler(InputError)
    async def _input(_request: Request, exc: InputError) -> JSONResponse:
        return field_problem(("body", exc.field) if isinstance(exc, FieldError) else ("body",), str(exc))

    @api.exception_handler(ConfigError)
    async def _config(_request: Request, exc: ConfigError) -> JSONResponse:
        return _detail(503, f"the bridge is not fully set up: {exc}")

    @api.exception_handler(BridgeError)
    async def _bridge(_request: Request, exc: BridgeError) -> JSONResponse:
        return _detail(422, str(exc))

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await _refused(request) or await request_validation_exception_handler(request, exc)

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            refused = await _refused(request)
            if refused is not None:
                return refused
        detail = "no such path in the API" if exc.status_code == 404 else str(exc.detail)
        return _detail(exc.status_code, detail, getattr(exc, "headers", None))
