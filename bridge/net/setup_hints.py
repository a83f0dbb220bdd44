"""The set-up mistakes that fill support pages, recognised from the typed values alone.

Pure functions shared by account validation (bridge/accounts/: the CLI and the admin pages) and
the diagnosis (bridge/net/diagnosis.py: Test Connection and the Mail Log), so a form, a command and a
failed connection name the same mistake in the same words.

Wrong protocol (an IMAP host or port given for SMTP, or the reverse): only the clear cases are
refused, where the mistake is certain and the right value is known: a provider's well-known host of
the other protocol (imap.gmail.com for SMTP, smtp.gmail.com for IMAP) and the other protocol's
standard ports (993/143 for SMTP; 25/465/587 for IMAP). A host merely named like the other protocol
(imap.example.com for SMTP) only gets a note: small providers serve both under one name.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from bridge.errors import InputError

_APP_PASSWORD = re.compile(r"[A-Za-z]{4}(?: [A-Za-z]{4}){3}")

IMAP_PORTS = (993, 143)
SMTP_PORTS = (25, 465, 587)


@dataclass(frozen=True)
class Provider:
    name: str
    imap_host: str
    smtp_host: str
    smtp_ports: str  # how to send there, as the hint says it


PROVIDERS = (
    Provider("Gmail", "imap.gmail.com", "smtp.gmail.com", "port 465 (ssl) or 587 (starttls)"),
    Provider("Microsoft 365", "outlook.office365.com", "smtp.office365.com", "port 587 (starttls)"),
    Provider("Outlook.com", "imap-mail.outlook.com", "smtp-mail.outlook.com", "port 587 (starttls)"),
    Provider("Yahoo", "imap.mail.yahoo.com", "smtp.mail.yahoo.com", "port 465 (ssl) or 587 (starttls)"),
    Provider("iCloud", "imap.mail.me.com", "smtp.mail.me.com", "port 587 (starttls)"),
    Provider("Fastmail", "imap.fastmail.com", "smtp.fastmail.com", "port 465 (ssl) or 587 (starttls)"),
    Provider("Zoho", "imap.zoho.com", "smtp.zoho.com", "port 465 (ssl) or 587 (starttls)"),
    Provider("AOL", "imap.aol.com", "smtp.aol.com", "port 465 (ssl) or 587 (starttls)"),
)
# Source addresses a provider never sees: the network's public (translated) address reaches it instead.
_BEHIND_NAT = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10"))
# Microsoft 365's hosts, where a failed sign-in may be a shared mailbox or a tenant without basic auth.
MICROSOFT_365_HOSTS = frozenset({"smtp.office365.com", "outlook.office365.com", "smtp-legacy.office365.com"})


def app_password(password: str) -> tuple[str, str | None]:
    """An app password pasted as shown (Google's "abcd efgh ijkl mnop") without its spaces, and a note.

    Only that exact shape is changed: four groups of four letters, single spaces between them.
    Any other password is returned as typed, spaces included. The note never holds the password.
    """
    if _APP_PASSWORD.fullmatch(password):
        return password.replace(" ", ""), ("the password looked like an app password shown in four groups of "
                                           "four letters: stored without its spaces")
    return password, None


def split_host_port(host: str, port: int | None) -> tuple[str, int | None]:
    """`host:port` (or `[v6]:port`) typed in the host field, split; IPv6 literals lose their brackets.

    The port in the host is taken when `port` is absent or the same; a different one is refused.
    """
    host = host.strip()
    if host.startswith("["):
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", host)
        if not match:
            raise InputError(f"host {host!r} is not a host name or address")
        name, embedded = match.group(1), match.group(2)
        _check_ipv6(host, name)
    elif host.count(":") > 1:  # a bare IPv6 address: its colons are not a port
        name, embedded = host, None
        _check_ipv6(host, name)
    elif ":" in host:
        name, embedded = host.split(":")
        if not embedded.isdigit():
            raise InputError(f"host {host!r} holds {embedded!r} after the colon, which is not a port")
    else:
        name, embedded = host, None
    if embedded is None:
        return name, port
    if port is not None and port != int(embedded):
        raise InputError(f"host {host!r} holds a port ({embedded}) other than --port {port}: give the port once")
    return name, int(embedded)


def _check_ipv6(typed: str, address: str) -> None:
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise InputError(f"host {typed!r} is not a host name or address") from None


@dataclass(frozen=True)
class ProtocolMix:
    """A host or port of the other protocol. `refuse` for the clear cases; `field` is host or port."""

    refuse: bool
    field: str
    text: str


def wrong_protocol(host: str, port: int, protocol: str) -> ProtocolMix | None:
    """An IMAP host or port given for SMTP (protocol "smtp"), or an SMTP one for IMAP ("imap")."""
    host = host.lower().rstrip(".")
    if protocol == "smtp":
        return _imap_for_smtp(host, port)
    return _smtp_for_imap(host, port)


def _imap_for_smtp(host: str, port: int) -> ProtocolMix | None:
    provider = next((p for p in PROVIDERS if p.imap_host == host), None)
    # outlook.office365.com answers SMTP too; only its IMAP ports are a certain mistake
    if provider and (provider.imap_host != "outlook.office365.com" or port in IMAP_PORTS):
        return ProtocolMix(True, "host", f"{host} is {provider.name}'s IMAP server (for reading mail): for sending "
                                         f"use {provider.smtp_host} {provider.smtp_ports}")
    likely = _likely(host, "imap.", "smtp.")
    if port in IMAP_PORTS:
        where = f"; the SMTP host is likely {likely}" if likely else ""
        return ProtocolMix(True, "port", f"port {port} is for IMAP: SMTP uses port 465 (ssl) or 587 (starttls)"
                                         f"{where}")
    if provider:
        return ProtocolMix(False, "host", f"{provider.name} documents {provider.smtp_host} "
                                          f"{provider.smtp_ports} for sending")
    if likely:
        return ProtocolMix(False, "host", f"{host} is named like an IMAP server: if sending fails, the SMTP host "
                                          f"is likely {likely}")
    return None


def _smtp_for_imap(host: str, port: int) -> ProtocolMix | None:
    provider = next((p for p in PROVIDERS if p.smtp_host == host), None)
    if provider:
        return ProtocolMix(True, "host", f"{host} is {provider.name}'s SMTP server (for sending): for reading mail "
                                         f"use {provider.imap_host} port 993 (ssl)")
    likely = _likely(host, "smtp.", "imap.")
    if port in SMTP_PORTS:
        where = f"; the IMAP host is likely {likely}" if likely else ""
        return ProtocolMix(True, "port", f"port {port} is for SMTP: IMAP uses port 993 (ssl) or 143 (starttls)"
                                         f"{where}")
    if likely:
        return ProtocolMix(False, "host", f"{host} is named like an SMTP server: if this fails, the IMAP host "
                                          f"is likely {likely}")
    return None


def _likely(host: str, prefix: str, other: str) -> str | None:
    return other + host[len(prefix):] if host.startswith(prefix) and len(host) > len(prefix) else None


def is_microsoft_365(host: str) -> bool:
    return host.lower().rstrip(".") in MICROSOFT_365_HOSTS


def shared_mailbox_hint(protocol: str) -> str:
    """Microsoft 365 shared mailboxes have no password of their own, so a password sign-in cannot work."""
    rights = "Send As rights" if protocol == "smtp" else "Full Access"
    doing = "sending" if protocol == "smtp" else "access"
    return (f"If this is a shared mailbox, it has no password of its own: sign in as a licensed user with {rights} "
            f"on it, or use app-only {doing} (--oauth NAME --oauth-flow app).")


def sign_in_with_microsoft(protocol: str) -> str:
    """How to move an account from a password to Sign in with Microsoft (the CLI contract's commands)."""
    return ("Sign in with Microsoft instead: `replybridge oauth add NAME --provider microsoft --client-id ID "
            f"--tenant TENANT`, then `replybridge {protocol} add ACCOUNT ... --oauth NAME`.")


def allow_list_hint(local_address: str) -> str:
    """Which address a provider's IP allow list must hold for this server."""
    hint = f"if the provider keeps an allow list, add this server's address {local_address}"
    try:
        ip = ipaddress.ip_address(local_address)
    except ValueError:
        return hint
    if any(ip in net for net in _BEHIND_NAT if net.version == ip.version):
        hint += " (a private address: the provider sees this network's public address instead)"
    return hint
