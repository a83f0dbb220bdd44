"""TODO docstring (split from bridge/accounts/validation.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sqlmodel import Session, select

from bridge.accounts.oauth.clients import get_client
from bridge.accounts.oauth.providers import FLOWS
from bridge.accounts.validation import (
    about,
    check_ca_file,
    check_host,
    check_name,
    check_port,
    check_security,
    check_timeout,
)
from bridge.errors import FieldError, NotFound
from bridge.input_checks import refuse_line_breaks
from bridge.net import setup_hints
from models import ImapServer, SmtpAccount


@dataclass(frozen=True)
class ServerFields:
    """The fields SMTP accounts and IMAP servers share, validated once for both.

    Validation also mends what people commonly paste (bridge.net.setup_hints): `host:port` in the host
    field is split (port may then be None), an app password shown in groups loses its spaces; each
    mend, and a host that looks like the other protocol's, is a note for the person (`notes`).
    """

    name: str
    host: str
    port: int | None
    security: str
    username: str | None
    password: str | None
    timeout: float
    ca_file: str | None

    def validated(self, protocol: str = "smtp") -> ServerFields:
        """The values to store; raises FieldError naming the field of the first bad value."""
        return self._checked(protocol)[0]

    def notes(self, protocol: str = "smtp") -> list[str]:
        """What validation changed or suspects, for the person who typed it (never the password)."""
        return self._checked(protocol)[1]

    def _checked(self, protocol: str) -> tuple[ServerFields, list[str]]:
        notes: list[str] = []
        password = self.password
        if password is not None and not self.username:
            raise FieldError("username", "a password needs a --username")
        if password is not None:
            with about("password"):
                refuse_line_breaks(password=password)
            password, note = setup_hints.app_password(password)
            notes += [note] if note else []
        with about("name"):
            name = check_name(self.name, "name")
        with about("host"):
            host, port = setup_hints.split_host_port(check_host(self.host), self.port)
        if port is None:
            raise FieldError("port", "give the port with --port (or as --host HOST:PORT)")
        if self.host.strip() not in (host, f"[{host}]"):
            notes.append(f"host {self.host.strip()!r} split into host {host} and port {port}")
        with about("port"):
            port = check_port(port)
        mix = setup_hints.wrong_protocol(host, port, protocol)
        if mix and mix.refuse:
            raise FieldError(mix.field, mix.text)
        notes += [mix.text] if mix else []
        with about("security"):
            security = check_security(self.security)
        with about("timeout"):
            timeout = check_timeout(self.timeout)
        with about("ca_file"):
            ca_file = check_ca_file(self.ca_file)
        fields = ServerFields(name, host, port, security, self.username.strip() if self.username else None,
                              password, timeout, ca_file)
        return fields, notes


def unique_name(session: Session, model: type[SmtpAccount] | type[ImapServer], name: str, own_id: int | None,
                 what: str) -> None:
    query = select(model).where(model.name == name)
    if own_id is not None:
        query = query.where(model.id != own_id)
    if session.exec(query).first():
        raise FieldError("name", f"{what} named {name!r} exists already")


def no_password_with_oauth(fields: ServerFields) -> None:
    if fields.password is not None:
        raise FieldError("password", "an account that signs in with --oauth has no password: give one or the other")


def use_oauth(session: Session, account: SmtpAccount | ImapServer, client_name: str, flow: str):  # noqa: ANN201
    """The account signs in with XOAUTH2 through the named OAuth client: delegated (a person signs in:
    `oauth login`) or app (client credentials, no person: Microsoft 365 SMTP.SendAsApp/IMAP.AccessAsApp)."""

    if flow not in FLOWS:
        raise FieldError("oauth_flow", f"--oauth-flow {flow!r} is not one of: {', '.join(FLOWS)}")
    with about("oauth"):
        client = get_client(session, client_name)
    if not account.username:
        raise FieldError("username", "an OAuth account needs --username: the mailbox it signs in as")
    account.oauth_client_id, account.oauth_flow, account.secret = client.id, flow, None
    session.add(account)
    session.flush()
    return account


Server = TypeVar("Server", SmtpAccount, ImapServer)


def by_name(session: Session, model: type[Server], name: str, what: str) -> Server:
    """The account or server called `name`, or NotFound naming what was looked for."""
    found = session.exec(select(model).where(model.name == name)).first()
    if found is None:
        raise NotFound(f"no {what} named {name!r}")
    return found


def by_id(session: Session, model: type[Server], record_id: int, what: str) -> Server:
    found = session.get(model, record_id)
    if found is None:
        raise NotFound(f"no {what} with id {record_id}")
    return found
