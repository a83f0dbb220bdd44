"""The database session of one request. Page functions are plain `def`s, so FastAPI runs them (and
this dependency) in its thread pool: database work never blocks the event loop."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlmodel import Session

from models.db import session_scope


def db(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.engine) as session:
        yield session
