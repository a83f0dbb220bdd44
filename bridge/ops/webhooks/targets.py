"""Where a webhook may go: never to a link-local or cloud metadata address (169.254.169.254 answers with
credentials on most clouds), to loopback and private addresses only where the admin allows it
(`settings set webhook_private_targets on`: an ATS on this machine or network). Checked when a webhook is
added and again right before each POST, on every address the host name resolves to then."""

from __future__ import annotations

import ipaddress
import socket

ALLOW_SETTING = "replybridge settings set webhook_private_targets on"
# metadata services outside the link-local range (AWS IPv6, Alibaba)
_METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


def refusal(host: str, allow_private: bool) -> str | None:
    """Why no webhook may go to `host` now, or None. A name that does not resolve is left to the POST, which
    then says it could not connect."""
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError):
        return None
    for text in sorted(found):
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        why = _why(address, allow_private)
        if why is not None:
            return f"{host} is {address}, {why}" if host.strip("[]") != str(address) else f"{address} is {why}"
    return None


def _why(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    if address.is_link_local or address in _METADATA:
        return "a link-local or cloud metadata address: never a webhook target"
    if address.is_unspecified or address.is_multicast or str(address).startswith("0."):
        return "not an address a receiver listens on"
    if address.is_loopback or address.is_private:
        return None if allow_private else f"a loopback or private address: allowed only with `{ALLOW_SETTING}`"
    if address.is_reserved:
        return "not an address a receiver listens on"
    return None
