"""Test Connection: walk the same steps a real send or append takes, and explain the first failure.

SMTP: connect, TLS, AUTH, MAIL FROM the numbered address, RCPT TO an outside address, then RSET, so a
server that would refuse to let the account send as that address, or to relay for it, says so now
rather than on the first real send; with `send_to`, a real test message marked as one goes out and
DATA's answer is reported (a refusal of send-as at DATA shows only there). On success the report names
this server's outgoing address, for a provider's allow list.
IMAP: connect, TLS, LOGIN, find the Sent folder (and the poll folder when one is set).
When nothing answers (timeout, refused, dropped), the hint names this server's outgoing address toward
the host, for a provider's IP allow list.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge import crypto, portal
from bridge.accounts.oauth.tokens import bearer_for
from bridge.errors import BridgeError
from bridge.net.connections import (
    StageError,
    close_quietly,
    endpoint_of,
    logout_quietly,
    open_imap,
    open_smtp,
    with_local_address,
)
from bridge.net.diagnosis import Endpoint, Failure, diagnose, failure_from_exception
from bridge.outbound.compose import Draft, render
from bridge.outbound.sent_folder import find_sent_folder
from models import Alias, Employee, ImapServer, OutboundMessage, SmtpAccount
from routing.message_ids import make_message_id


@dataclass
class Report:
    steps: list[str] = field(default_factory=list)
    ok: bool = True
    diagnosis: str | None = None
    hint: str | None = None

    def fail(self, failure: Failure, hint: str) -> Report:
        self.ok, self.diagnosis, self.hint = False, f"{failure.reply()} (at {failure.stage})", hint
        return self

    def lines(self) -> list[str]:
        out = list(self.steps)
        if self.ok:
            out.append("Status: OK")
        else:
            out += ["Status: FAILED", f"Diagnosis: {self.diagnosis}", f"Hint: {self.hint}"]
        return out


def _hint(failure: Failure, ep: Endpoint, sender: str | None = None) -> str:
    return diagnose(failure, with_local_address(ep, failure), sender).hint


def _sender_for(session: Session, account: SmtpAccount, employee_number: int | None) -> str | None:
    """The numbered address to try MAIL FROM with: the given employee, else one who sends via the account."""
    settings = portal.load(session)
    if not settings.reply_address:
        return None
    numbered = settings.numbered()
    if employee_number is not None:
        return numbered.make(employee_number)
    query = select(Employee.number).join(Alias, Alias.employee_id == Employee.id).where(Employee.active)
    if account.is_default:
        query = query.where((Alias.smtp_account_id == account.id) | Alias.smtp_account_id.is_(None))
    else:
        query = query.where(Alias.smtp_account_id == account.id)
    number = session.exec(query.order_by(Employee.number)).first()
    return numbered.make(number) if number is not None else None


def outside_recipient(session: Session, account: SmtpAccount, to: str | None) -> str | None:
    """Whom RCPT TO tries: `to`, else the test_recipient setting, else the last recipient of mail sent through
    this account (an address the account must be able to reach)."""
    if to:
        return to
    configured = portal.load(session).test_recipient
    if configured:
        return configured
    return session.exec(select(OutboundMessage.to_addr).where(OutboundMessage.smtp_account == account.name,
                                                              OutboundMessage.status == "sent")
                        .order_by(OutboundMessage.id.desc())).first()


def check_smtp(session: Session, account: SmtpAccount, employee_number: int | None = None, *,
               to: str | None = None, send_to: str | None = None) -> Report:
    report = Report()
    ep = endpoint_of(account)
    sender = _sender_for(session, account, employee_number)
    try:
        conn = open_smtp(account, bearer=bearer_for(session.get_bind(), account))
    except StageError as err:
        failure = failure_from_exception(err.cause, err.stage)
        return report.fail(failure, _hint(failure, ep, sender))
    except BridgeError as err:
        return report.fail(Failure("config", "auth", None, str(err)), str(err))
    try:
        report.steps.append(f"Connected to {account.host}:{account.port} ({account.security})")
        if account.security in ("ssl", "starttls"):
            report.steps.append(f"TLS: {conn.sock.version()}")  # type: ignore[union-attr]
        if account.username:
            report.steps.append(f"Authenticated as {account.username}")
        if sender is None:
            report.steps.append("MAIL FROM not tried: no employee sends through this account yet (name one with "
                                "--employee N)")
        else:
            failed = _transaction(session, conn, account, sender, send_to or outside_recipient(session, account, to),
                                  send_to is not None, report)
            if failed is not None:
                return report.fail(failed, _hint(failed, ep, sender))
        local = conn.sock.getsockname()[0] if conn.sock else None  # type: ignore[union-attr]
        if local:
            report.steps.append(f"Outgoing address: {local} (put it on the provider's allow list if it has one)")
        return report
    finally:
        close_quietly(conn)


def _transaction(session: Session, conn: smtplib.SMTP, account: SmtpAccount, sender: str, recipient: str | None,
                 send: bool, report: Report) -> Failure | None:
    """MAIL, RCPT and (when `send`) DATA of a marked test message, else RSET; the failure, or None."""
    stage = "mail"
    try:
        code, msg = conn.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, msg, sender)
        report.steps.append(f"MAIL FROM:<{sender}> accepted ({code})")
        if recipient is None:
            report.steps.append("RCPT TO not tried: no outside address known yet (set test_recipient, or --to ADDR)")
            conn.rset()
            return None
        stage = "rcpt"
        code, msg = conn.rcpt(recipient)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (code, msg)})
        report.steps.append(f"RCPT TO:<{recipient}> accepted ({code}): the server relays for this account")
        if not send:
            conn.rset()
            return None
        stage = "data"
        code, msg = conn.data(_test_message(session, account, sender, recipient))
        if code != 250:
            raise smtplib.SMTPDataError(code, msg)
        report.steps.append(f"Test message sent to {recipient}: {code} {msg.decode('utf-8', 'replace')}")
        return None
    except (smtplib.SMTPException, OSError) as exc:
        return failure_from_exception(exc, stage)


def _test_message(session: Session, account: SmtpAccount, sender: str, recipient: str) -> bytes:
    settings = portal.load(session)
    domain = sender.rsplit("@", 1)[1]
    return render(Draft(
        from_name=settings.mailer_name, from_addr=sender, to_addr=recipient,
        subject=f"Test message from replybridge (SMTP account {account.name})",
        message_id=make_message_id(crypto.signing_key("message-id"), domain, None), mailer=settings.mailer_name,
        text=f"This is a test message sent by Test connection for the SMTP account {account.name!r}.\n"
             "Nothing needs to be done with it.\n", auto_submitted="auto-generated"))


def check_imap(engine: Engine, server: ImapServer) -> Report:
    report = Report()
    ep = endpoint_of(server)
    try:
        client = open_imap(server, bearer_for(engine, server))
    except StageError as err:
        failure = failure_from_exception(err.cause, err.stage)
        return report.fail(failure, _hint(failure, ep))
    except BridgeError as err:
        return report.fail(Failure("config", "login", None, str(err)), str(err))
    try:
        report.steps.append(f"Connected to {server.host}:{server.port} ({server.security})")
        report.steps.append(f"Logged in as {server.username}")
        try:
            folder = find_sent_folder(client, server.sent_folder)
            report.steps.append(f"Sent folder: {folder}")
            if server.poll_folder:
                if not client.folder_exists(server.poll_folder):
                    raise BridgeError(f"the poll folder {server.poll_folder!r} does not exist on the server")
                report.steps.append(f"Poll folder: {server.poll_folder}")
        except BridgeError as err:
            return report.fail(Failure("folder", "folder", None, str(err)), str(err))
        except Exception as exc:  # noqa: BLE001 - any IMAP failure is reported, not raised
            failure = failure_from_exception(exc, "folder")
            return report.fail(failure, _hint(failure, ep))
        return report
    finally:
        logout_quietly(client)
