"""The HTTP API under /api/v1 (DESIGN.md, HTTP API)."""

from fastapi import FastAPI
from sqlalchemy.engine import Engine


def create_api(engine: Engine) -> FastAPI:
    api = FastAPI(title="replybridge API", version="1", openapi_url="/openapi.json", docs_url=None, redoc_url=None)
    api.state.engine = engine
    return api
