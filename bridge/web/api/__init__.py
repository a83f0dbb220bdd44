"""The HTTP API under /api/v1 (docs/ARCHITECTURE.md, "Contract"): bearer tokens, JSON objects as the CLI prints them.

Routes are plain `def`s: FastAPI runs them in its thread pool, so the database never blocks the
event loop. Every error is JSON (bridge.web.api.errors); /api/v1/openapi.json documents it all.
"""

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from bridge.web.api import candidates, errors, messages, outbound

DESCRIPTION = """Send and receive candidate mail from an applicant tracking system.

Authenticate with `Authorization: Bearer TOKEN` (`replybridge token create NAME --employee N` or `--admin`).
An employee token sees its employee's mail and the Unassigned messages; an admin token sees everything.
Objects are the CLI's `--json` objects. Lists are newest first and paged with an opaque `cursor`
(the page's `next_cursor`). Errors: 401 without a valid token, 403 outside the token's employee,
404 unknown id, 409 when the object's state does not allow the action, 422 for a bad field
(`detail[].loc` names it).
"""


def create_api(engine: Engine) -> FastAPI:
    api = FastAPI(title="replybridge API", version="1", openapi_url="/openapi.json", docs_url=None, redoc_url=None,
                  description=DESCRIPTION, generate_unique_id_function=lambda route: route.name)
    api.state.engine = engine
    errors.install(api)
    api.include_router(messages.router)
    api.include_router(outbound.router)
    api.include_router(candidates.router)
    return api
