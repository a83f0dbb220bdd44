"""What went wrong with a mail server, and what a person can do about it.

`failure_from_exception` turns what smtplib, imaplib, ssl and socket raise into a `Failure`;
`diagnose` turns a Failure and the account's settings into a verdict (temporary or not) and a
plain-language hint. Both are pure: the sender, the Sent-folder appender and Test Connection
share them, so the Mail Log and Test Connection always say the same thing. What needs I/O to know
(this server's outgoing address, for a provider's allow list) is found by the caller and passed in
the Endpoint. The set-up mistakes a form also catches (an IMAP host for SMTP...) are named first.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass

from imapclient.exceptions import LoginError

from bridge.net import setup_hints

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Failure:
    """One failed exchange. `kind` is 'reply' when the server answered with a code."""

    # reply | login | imap | timeout | refused | dns | tls | cert | disconnected | no_starttls | no_auth | network
    kind: str
    stage: str  # connect | tls | auth | mail | rcpt | data | login | folder | append
    code: int | None = None
    text: str = ""

    @property
    def enhanced(self) -> str | None:
        match = _ENHANCED.search(self.text)
        return ".".join(match.groups()) if match else None

    def reply(self) -> str:
        """The server's words as the Mail Log shows them."""
        if self.code is not None:
            return f"{self.code} {self.text}".strip()
        return self.text


@dataclass(frozen=True)
class Endpoint:
    """What the diagnosis needs to know of the account (no secret)."""

    host: str
    port: int
    security: str
    timeout: float = 30.0
    username: str | None = None
    protocol: str = "smtp"  # smtp | imap
    local_address: str | None = None  # this server's address toward the host, when the caller looked it up
    name: str | None = None  # the account's name, for the command that fixes it


@dataclass(frozen=True)
class Diagnosis:
    temporary: bool
    hint: str


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def failure_from_exception(exc: BaseException, stage: str) -> Failure:
    """Classify an exception raised while talking to a server at `stage`."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return Failure("reply", "rcpt", code, _text(text))
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Failure("reply", "auth", exc.smtp_code, _text(exc.smtp_error))
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        kind = "no_starttls" if "STARTTLS" in str(exc).upper() else "no_auth"
        return Failure(kind, stage, None, str(exc))
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib reports a read timeout as a disconnect; the timeout is its context
        if isinstance(exc.__context__, TimeoutError) or "timed out" in str(exc):
            return Failure("timeout", stage, None, "no answer before the timeout")
        return Failure("disconnected", stage, None, str(exc) or "the server closed the connection")
    if isinstance(exc, smtplib.SMTPResponseException):
        return Failure("reply", stage, exc.smtp_code, _text(exc.smtp_error))
    if isinstance(exc, LoginError):
        return Failure("login", "login", None, _text(exc))
    if isinstance(exc, imaplib.IMAP4.error):
        return Failure("imap", stage, None, _text(exc))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Failure("cert", stage, None, f"certificate verify failed: {exc.verify_message or exc.reason}")
    if isinstance(exc, ssl.SSLError):
        return Failure("tls", stage, None, exc.reason or str(exc))
    if isinstance(exc, TimeoutError | socket.timeout):
        return Failure("timeout", stage, None, "no answer before the timeout")
    if isinstance(exc, ConnectionRefusedError):
        return Failure("refused", stage, None, "connection refused")
    if isinstance(exc, socket.gaierror):
        return Failure("dns", stage, None, f"host name not found ({exc.strerror})")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError):
        return Failure("disconnected", stage, None, "the server closed the connection")
    if isinstance(exc, OSError):
        return Failure("network", stage, None, exc.strerror or str(exc))
    return Failure("network", stage, None, type(exc).__name__)


def _tls_mode_hint(ep: Endpoint) -> str:
    ssl_port, tls_port = (993, 143) if ep.protocol == "imap" else (465, 587)
    return (f"Security mode mismatch: port {ssl_port} uses `ssl` (TLS from the first byte) and port {tls_port} "
            f"uses `starttls`; this account is `{ep.security}` on port {ep.port}.")


def _looks_like_mode_mismatch(ep: Endpoint) -> bool:
    if ep.protocol == "imap":
        return (ep.port == 993 and ep.security != "ssl") or (ep.port == 143 and ep.security == "ssl")
    return (ep.port == 465 and ep.security != "ssl") or (ep.port in (25, 587) and ep.security == "ssl")


def _send_as_denied(f: Failure) -> bool:
    text = f.text.lower()
    return (f.enhanced in ("5.7.60", "5.2.252") or "sendasdenied" in text or "send as" in text
            or "not owned by user" in text or "not allowed to send" in text)


def diagnose(f: Failure, ep: Endpoint, sender: str | None = None) -> Diagnosis:
    """The verdict and the hint for a failure against this endpoint; a host or port of the other protocol
    (an IMAP host given for SMTP) is named first, as it is the likely cause of anything else."""
    verdict = _diagnose(f, ep, sender)
    mix = setup_hints.wrong_protocol(ep.host, ep.port, ep.protocol)
    if mix:
        said = mix.text.replace("port", "Port", 1) if mix.text.startswith("port") else mix.text  # hosts stay as typed
        return Diagnosis(verdict.temporary, f"{said}. {verdict.hint}")
    return verdict


def _allow_list(ep: Endpoint) -> str:
    if not ep.local_address:
        return ""
    hint = setup_hints.allow_list_hint(ep.local_address)
    return f" {hint[0].upper()}{hint[1:]}."


def _diagnose(f: Failure, ep: Endpoint, sender: str | None) -> Diagnosis:
    where = f"{ep.host}:{ep.port}"
    if f.kind == "reply" and f.code is not None:
        return _diagnose_reply(f, ep, sender)
    if f.kind == "login":
        if setup_hints.is_microsoft_365(ep.host):
            return Diagnosis(False, "Microsoft 365 refused the sign-in: it no longer accepts passwords over IMAP "
                                    f"(basic authentication is off). {setup_hints.sign_in_with_microsoft('imap')} "
                                    f"{setup_hints.shared_mailbox_hint('imap')}")
        return Diagnosis(False, "The IMAP server refused the username or password: check both; where the mailbox "
                                "uses two-step sign-in, use an app password; Microsoft 365 and Gmail may need "
                                "IMAP enabled for the mailbox.")
    if f.kind == "imap":
        if "starttls" in f.text.lower():
            return Diagnosis(False, f"{where} does not offer STARTTLS. {_tls_mode_hint(ep)}")
        return Diagnosis(True, f"The IMAP server refused a command during {f.stage} ({f.text}).")
    if f.kind == "timeout":
        hint = (f"No answer from {where} within {ep.timeout:g} s: check the host and port, and that no firewall "
                f"or IP allow list of the provider blocks this machine.{_allow_list(ep)}")
        if _looks_like_mode_mismatch(ep):
            hint = f"{_tls_mode_hint(ep)} {hint}"
        return Diagnosis(True, hint)
    if f.kind == "refused":
        usual = "993 for ssl, 143 for starttls" if ep.protocol == "imap" else "465 for ssl, 587 for starttls"
        return Diagnosis(True, f"Nothing accepts connections on {where} (connection refused): check the port "
                               f"({usual}) and that the server runs; a firewall can also refuse.{_allow_list(ep)}")
    if f.kind == "dns":
        return Diagnosis(True, f"The host name {ep.host!r} cannot be resolved: check its spelling "
                               "(e.g. smtp.office365.com, smtp.gmail.com) and this machine's DNS.")
    if f.kind == "tls":
        return Diagnosis(False, f"TLS could not start ({f.text}). {_tls_mode_hint(ep)}")
    if f.kind == "cert":
        return Diagnosis(False, f"The server's certificate was not accepted ({f.text}): use the host name the "
                                "certificate is issued for, or give the CA that signed it with --ca-file.")
    if f.kind == "no_starttls":
        return Diagnosis(False, f"{where} does not offer STARTTLS. {_tls_mode_hint(ep)} Use `none` only for a "
                                "server on a trusted network that has no TLS at all.")
    if f.kind == "no_auth":
        return Diagnosis(False, f"{where} offers no authentication here, but a username is set: the server may "
                                "offer AUTH only after STARTTLS (use `starttls`), or it is a relay that "
                                "needs no username (remove it and allow this machine's IP to relay).")
    if f.kind == "disconnected":
        hint = (f"{where} closed the connection during {f.stage}: often a security mode mismatch, a rate limit, "
                f"or a server that refuses this machine's IP address. The bridge retries.{_allow_list(ep)}")
        if _looks_like_mode_mismatch(ep):
            hint = f"{_tls_mode_hint(ep)} {hint}"
        return Diagnosis(True, hint)
    return Diagnosis(True, f"Network error talking to {where} ({f.text}): the bridge retries.")


def _diagnose_auth(f: Failure, ep: Endpoint, temporary: bool) -> Diagnosis:
    """A refused sign-in. Microsoft 365 says why in 5.7.139's text: basic authentication off for the tenant,
    security defaults, SMTP AUTH off, or simply wrong credentials (which may be a shared mailbox's)."""
    text = f.text.lower()
    if "basic authentication is disabled" in text or "security defaults" in text or (
            f.enhanced == "5.7.139" and "credentials" not in text and "smtpclientauthentication" not in text):
        return Diagnosis(False, f"Basic authentication (SMTP AUTH with a password) is disabled for this "
                                f"Microsoft 365 tenant. {setup_hints.sign_in_with_microsoft(ep.protocol)}")
    if "smtpclientauthentication is disabled" in text:
        return Diagnosis(False, "Authenticated SMTP (SMTP AUTH) is turned off in Microsoft 365 for this mailbox or "
                                "the tenant: an administrator turns it on (admin center: the user's Mail, Manage "
                                "email apps, Authenticated SMTP).")
    hint = ("The server refused the username or password: check both; where the mailbox uses two-step sign-in, "
            "use an app password; Microsoft 365 also needs Authenticated SMTP (SMTP AUTH) enabled for the mailbox.")
    if ep.name:
        page = "SMTP accounts" if ep.protocol == "smtp" else "IMAP servers"
        hint = (f"{hint} Change them with `replybridge {ep.protocol} set {ep.name} --username U --password-stdin` "
                f"or on its page (Admin, {page}).")
    if setup_hints.is_microsoft_365(ep.host):
        hint = f"{hint} {setup_hints.shared_mailbox_hint(ep.protocol)}"
    return Diagnosis(temporary, hint)


def _diagnose_reply(f: Failure, ep: Endpoint, sender: str | None) -> Diagnosis:
    code, enhanced, text = f.code or 0, f.enhanced, f.text.lower()
    temporary = 400 <= code < 500
    if f.stage in ("auth", "login") or code in (534, 535) or enhanced in ("5.7.8", "5.7.3", "5.7.139"):
        return _diagnose_auth(f, ep, temporary)
    if _send_as_denied(f):
        who = f" as {sender}" if sender else " as the numbered address"
        return Diagnosis(False, f"The account may not send{who}: grant it Send As rights (or impersonation) on "
                                "that address or add the address to the mailbox, or use sender mode `reply-to` "
                                "(From stays the account's own address; replies still come to the numbered "
                                "address).")
    if enhanced == "5.7.1" and ("relay" in text or f.stage == "rcpt"):
        return Diagnosis(False, "The server will not relay this mail for the bridge: authenticate with the "
                                "account's username and password, or allow this machine's IP address to relay "
                                "(e.g. a connector or receive connector that permits external relay).")
    if code == 552 or enhanced in ("5.3.4", "5.2.3"):
        return Diagnosis(False, "The message is larger than the server accepts: send smaller attachments.")
    if enhanced in ("5.1.1", "5.1.10") or ("user unknown" in text and code >= 500):
        return Diagnosis(False, "The recipient's address does not exist: check the spelling of the address.")
    if enhanced == "4.2.2" or "mailbox full" in text or "over quota" in text:
        if temporary:
            return Diagnosis(True, "The recipient's mailbox is full: the bridge retries.")
        return Diagnosis(False, "The recipient's mailbox is full and the server will not keep the message: reach "
                                "the candidate another way, or queue it again later.")
    if code == 421:
        return Diagnosis(True, "The server is not taking mail right now (421: busy, rate-limited or shutting "
                               "down): the bridge retries.")
    if temporary:
        return Diagnosis(True, "The server reported a temporary failure (greylisting, load or a rate limit): "
                               "the bridge retries.")
    if code >= 500:
        return Diagnosis(False, "The server refused the message permanently: its reply says why. Fix the cause, "
                                "then queue the message again.")
    return Diagnosis(True, "The server gave an unexpected answer: the bridge retries.")
