"""Failed sign-ins and API tokens, counted in the database so every web process agrees, and counted before
the password is checked: of forty guesses sent at once, only the free ones are checked.

Each key (an account, a client address) has FREE attempts; after that each attempt must wait 2, 4, 8 ...
seconds (at most MAX_WAIT) after the one before, and an hour of quiet forgives. A sign-in counts under
its account (few free tries) and its address (more, so people behind one address with a guesser are not
locked out for long); a success clears them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import case, delete, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from models import AuthThrottle, aware, utcnow

MAX_WAIT = dt.timedelta(minutes=5)
QUIET = dt.timedelta(hours=1)


def wait_before(session: Session, key: str, free: int) -> float:
    """Count one attempt under `key` and return how many seconds it must still wait (0: go ahead and check
    it). Atomic: the count is taken by one conditional UPDATE, inside the caller's transaction."""
    now = utcnow()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.exec(insert(AuthThrottle).values(key=key, failures=0, last_at=now).on_conflict_do_nothing())
    forgiven = AuthThrottle.last_at < now - QUIET
    counted = session.exec(update(AuthThrottle).where(
        AuthThrottle.key == key,
        or_(forgiven, AuthThrottle.blocked_until.is_(None), AuthThrottle.blocked_until <= now))
        .values(failures=case((forgiven, 1), else_=AuthThrottle.failures + 1), last_at=now)
        .returning(AuthThrottle.failures)).first()
    if counted is None:  # still waiting out an earlier failure
        until = session.exec(select(AuthThrottle.blocked_until).where(AuthThrottle.key == key)).one()
        return max(1.0, (aware(until) - now).total_seconds())
    if counted[0] > free:
        wait = min(dt.timedelta(seconds=2 ** (counted[0] - free)), MAX_WAIT)
        session.exec(update(AuthThrottle).where(AuthThrottle.key == key).values(blocked_until=now + wait))
    return 0.0


def blocked_for(session: Session, key: str) -> float:
    """Seconds `key` must still wait, without counting anything (0: not blocked)."""
    until = session.exec(select(AuthThrottle.blocked_until).where(AuthThrottle.key == key)).first()
    return max(0.0, (aware(until) - utcnow()).total_seconds()) if until is not None else 0.0


def failed(session: Session, key: str, free: int) -> None:
    """Count a failure after the fact (API tokens: a valid one is never counted, so no write per request)."""
    wait_before(session, key, free)


def succeeded(session: Session, *keys: str) -> None:
    session.exec(delete(AuthThrottle).where(AuthThrottle.key.in_(keys)))
