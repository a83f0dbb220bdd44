"""Each SMTP account's and IMAP server's Test connection (bridge.checks.connection_check), all at once.

In parallel, each on a daemon thread of its own, waited for together up to a deadline: ten servers that
never answer cost one deadline, not ten timeouts, and a check still waiting then is reported as such
(its thread is left to its own timeout and dies with the command). Each check has an engine of its own:
a check holds its connection while it waits on its server, and a shared pool would make the eleventh
check, or the next one of the doctor's, wait for those."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import select

from bridge.checks.connection_check import Report, check_imap, check_smtp
from bridge.ops.doctor import Finding, fail, ok
from models import ImapServer, SmtpAccount
from models.db import make_engine, session_scope


@dataclass
class _Check:
    what: str  # "SMTP account 'main'"
    command: str  # the command that shows every step
    run: Callable[[], Report]
    report: Report | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def __call__(self) -> None:
        try:
            self.report = self.run()
        except Exception as err:  # noqa: BLE001 - reported as the check's failure; its text may hold no secret
            self.error = type(err).__name__
        finally:
            self.done.set()


def test_connections(engine: Engine, deadline_s: float) -> list[Finding]:
    """A finding per account, in name order: SMTP accounts, then IMAP servers."""
    checks = _checks(engine)
    for check in checks:
        threading.Thread(target=check, name=f"rb-doctor-{check.what}", daemon=True).start()
    deadline = time.monotonic() + deadline_s
    for check in checks:
        check.done.wait(max(0.0, deadline - time.monotonic()))
    return [_finding(check, deadline_s) for check in checks]


def _checks(engine: Engine) -> list[_Check]:
    with session_scope(engine) as session:
        smtp = session.exec(select(SmtpAccount.id, SmtpAccount.name).order_by(SmtpAccount.name)).all()
        imap = session.exec(select(ImapServer.id, ImapServer.name).order_by(ImapServer.name)).all()
    return ([_Check(f"SMTP account {name!r}", f"replybridge test smtp {name}", _smtp(engine, i)) for i, name in smtp]
            + [_Check(f"IMAP server {name!r}", f"replybridge test imap {name}", _imap(engine, i)) for i, name in imap])


def _smtp(engine: Engine, account_id: int) -> Callable[[], Report]:
    def run() -> Report:
        with _own(engine) as own, session_scope(own) as session:
            return check_smtp(session, session.get(SmtpAccount, account_id))
    return run


def _imap(engine: Engine, server_id: int) -> Callable[[], Report]:
    def run() -> Report:
        with _own(engine) as own:
            with session_scope(own) as session:
                server = session.get(ImapServer, server_id)
                session.expunge(server)
            return check_imap(own, server)
    return run


@contextmanager
def _own(engine: Engine) -> Iterator[Engine]:
    """An engine on the same database for one check, closed with it."""
    own = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        yield own
    finally:
        own.dispose()


def _finding(check: _Check, deadline_s: float) -> Finding:
    if not check.done.is_set():
        return fail(check.what, f"no answer within {deadline_s:g} s",
                    f"check the host and port, and that this machine may reach them (a firewall, the provider's "
                    f"allow list); `{check.command}` shows each step")
    if check.error is not None:
        return fail(check.what, f"the check itself failed ({check.error})", f"`{check.command}` shows each step")
    report = check.report
    assert report is not None
    if report.ok:
        return ok(check.what, f"Test connection: OK ({'; '.join(report.steps[:1])})")
    return fail(check.what, report.diagnosis or "failed", f"{report.hint} (`{check.command}` shows each step)")
