"""`replybridge doctor`: the checks an admin runs after an install, a move or a restore, each saying what it found
and what to do. Each check is a module of its own: the key (key.py), the database (database.py), file permissions
(files.py), each account's Test connection (accounts.py) and the poll folders (folders.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class Finding:
    """One check's outcome: never a secret in any field."""

    check: str
    status: Status
    detail: str
    fix: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}

    def line(self) -> str:
        return f"{self.status:<4}  {self.check}: {self.detail}" + (f". Fix: {self.fix}" if self.fix else "")


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def warn(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "warn", detail, fix)


def fail(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "FAIL", detail, fix)
