"""Set-up read once per transaction that routes a batch: the default SMTP account, the employees, the
aliases' own addresses and the webhooks' subscriptions are the same for every message of the batch, and
reading them per message was most of routing's cost. Off unless the transaction asks for it
(`remember_in`), so no other session sees a value older than its own reads."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

from sqlmodel import Session

_KEY = "replybridge.memo"
T = TypeVar("T")


def remember_in(session: Session) -> None:
    """From now on in this session, `remembered` look-ups are read once."""
    session.info[_KEY] = {}


def remember(session: Session, key: Hashable, value: object) -> None:
    """Answer a later `remembered(key)` with `value` (a look-up made for many messages at once)."""
    memo = session.info.get(_KEY)
    if memo is not None:
        memo[key] = value


def remembered(session: Session, key: Hashable, read: Callable[[], T]) -> T:
    """`read()`, or what it gave earlier in this session where the session remembers."""
    memo = session.info.get(_KEY)
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return memo[key]
