"""One SMTP transaction over a reused connection, with the stage of any failure recorded.

MAIL, RCPT and DATA are issued one by one (not `sendmail`) so the Mail Log can keep the server's
final reply on success and say at which step a refusal came.
"""

from __future__ import annotations

import contextlib
import smtplib
from dataclasses import dataclass

from bridge.connections import StageError, close_quietly, open_smtp
from models import SmtpAccount


@dataclass(frozen=True)
class Accepted:
    code: int
    reply: str


class SmtpPool:
    """Open connections per account for one worker run: a batch reuses one connection."""

    def __init__(self) -> None:
        self._open: dict[int, smtplib.SMTP] = {}

    def get(self, account: SmtpAccount) -> smtplib.SMTP:
        conn = self._open.get(account.id)
        if conn is not None:
            try:
                if conn.noop()[0] == 250:
                    return conn
            except (smtplib.SMTPException, OSError):
                pass
            self.drop(account)
        conn = open_smtp(account)
        self._open[account.id] = conn
        return conn

    def drop(self, account: SmtpAccount) -> None:
        conn = self._open.pop(account.id, None)
        if conn is not None:
            close_quietly(conn)

    def close(self) -> None:
        for conn in self._open.values():
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
