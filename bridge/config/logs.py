"""How the service's log lines look (the `log_format` and `log_level` settings), and the line each step of a
message's life writes.

A step line names the step and the ids an admin follows a message by (`inbound_id`, `outbound_id`,
`message_id`, ...). As text they end the line as `key=value`; as JSON (python-json-logger) they are the
object's fields, so a log shipper can index them without parsing words.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING

from sqlalchemy import event

from bridge.config.settings import current

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "process", "message")
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
HANDLER_NAME = "replybridge"
_PENDING = "replybridge_step_lines"  # the session.info key of the lines waiting for their commit
_ADDRESS = re.compile(r"<?[^\s<>@\"'(),;:\[\]]+@[^\s<>@\"'(),;:\[\]]+>?")


def configure() -> None:
    """Set the process's log lines up from the settings (once per process: `serve` and each of its children)."""
    settings = current()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(settings.log_format))
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:  # ours only: a test's capture stays
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # aiosmtpd logs every connection and command line at INFO: a line per command is most of a receiver's
    # time under load, and says nothing the stored message and its verdict trail do not
    logging.getLogger("mail.log").setLevel(logging.INFO if settings.smtp_connection_log else logging.WARNING)


def _formatter(kind: str) -> logging.Formatter:
    if kind == "json":
        from pythonjsonlogger.json import JsonFormatter  # only where JSON lines were asked for

        return JsonFormatter(list(JSON_FIELDS), rename_fields=JSON_NAMES, json_ensure_ascii=False)
    return logging.Formatter(TEXT_FORMAT)


def step(logger: logging.Logger, name: str, **ids: object) -> None:
    """One step of a message's life (received, stored, routed, handed off, queued, sent, filed, ...) at INFO,
    with its ids; None values are left out."""
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {key: value for key, value in ids.items() if value is not None}
    text = " ".join(f"{key}={value}" for key, value in fields.items())
    logger.info("%s %s", name, text, extra={"step": name, **fields})


def step_on_commit(session: Session, logger: logging.Logger, name: str, **ids: object) -> None:
    """`step`, written once the session's transaction commits, never if it rolls back: a line must not tell of
    work that was undone. A value may be a function, called then (an id the INSERT at the commit assigns)."""
    if _PENDING not in session.info:
        session.info[_PENDING] = []
        event.listen(session, "after_commit", _write_pending)
        event.listen(session, "after_rollback", _drop_pending)
    session.info[_PENDING].append((logger, name, ids))


def _write_pending(session: Session) -> None:
    lines, session.info[_PENDING] = session.info[_PENDING], []
    for logger, name, ids in lines:
        step(logger, name, **{key: value() if callable(value) else value for key, value in ids.items()})


def _drop_pending(session: Session) -> None:
    session.info[_PENDING] = []


def without_addresses(text: str) -> str:
    """A server's reply or a refusal as a step line may carry it: every mail address in it replaced by
    `<address>`. Step lines name messages by their ids; a person's address stays out of the logs."""
    return _ADDRESS.sub("<address>", text)
