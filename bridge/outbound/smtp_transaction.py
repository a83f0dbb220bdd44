"""One SMTP transaction over a reused connection, with the stage of any failure recorded.

MAIL, RCPT and DATA are issued one by one (not `sendmail`) so the Mail Log can keep the server's
final reply on success and say at which step a refusal came.
"""

from __future__ import annotations

import contextlib
import smtplib
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from bridge.accounts.oauth.tokens import bearer_for
from bridge.net.connections import StageError, close_quietly, open_smtp
from models import SmtpAccount


@dataclass(frozen=True)
class Accepted:
    code: int
    reply: str


class SmtpPool:
    """Open connections per account for one worker run: a batch reuses one connection.

    A connection idle for longer than IDLE_PROBE_S is probed with NOOP before reuse (servers drop
    idle clients); a busy one is not, which saves a round trip per message.
    """

    IDLE_PROBE_S = 5.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._open: dict[int, tuple[smtplib.SMTP, float]] = {}

    def get(self, account: SmtpAccount) -> smtplib.SMTP:
        entry = self._open.get(account.id)
        if entry is not None:
            conn, last_used = entry
            if time.monotonic() - last_used < self.IDLE_PROBE_S or self._answers(conn):
                self._open[account.id] = (conn, time.monotonic())
                return conn
            self.drop(account)
        conn = open_smtp(account, bearer=bearer_for(self.engine, account))
        self._open[account.id] = (conn, time.monotonic())
        return conn

    @staticmethod
    def _answers(conn: smtplib.SMTP) -> bool:
        try:
            return conn.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def drop(self, account: SmtpAccount) -> None:
        entry = self._open.pop(account.id, None)
        if entry is not None:
            close_quietly(entry[0])

    def close(self) -> None:
        for conn, _last_used in self._open.values():
            close_quietly(conn)
        self._open.clear()


def _reply_text(msg: bytes | str) -> str:
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg


def transmit(conn: smtplib.SMTP, envelope_from: str, recipients: list[str], raw: bytes) -> Accepted:
    """MAIL, RCPT, DATA. Raises StageError with an SMTPResponseException for a refusal."""
    stage = "mail"
    try:
        options = ["SMTPUTF8"] if not (envelope_from + "".join(recipients)).isascii() else []
        code, msg = conn.mail(envelope_from, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, msg, envelope_from)
        stage = "rcpt"
        for rcpt in recipients:
            code, msg = conn.rcpt(rcpt)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({rcpt: (code, msg)})
        stage = "data"
        code, msg = conn.data(raw)
        if code != 250:
            raise smtplib.SMTPDataError(code, msg)
        return Accepted(code, _reply_text(msg))
    except BaseException as exc:
        if isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.rset()
        raise StageError(stage, exc) from None
