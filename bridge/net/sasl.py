"""The SASL initial responses that carry an OAuth access token: XOAUTH2 (Microsoft 365, Google) and
OAUTHBEARER (RFC 7628). Wire format only; where the token comes from is bridge.accounts.oauth."""

from __future__ import annotations


def xoauth2(username: str, access_token: str) -> str:
    """The XOAUTH2 initial response (before base64), for SMTP AUTH and IMAP AUTHENTICATE."""
    return f"user={username}\x01auth=Bearer {access_token}\x01\x01"


def oauthbearer(username: str, access_token: str, host: str, port: int) -> str:
    """The OAUTHBEARER (RFC 7628) initial client response (before base64)."""
    return f"n,a={username},\x01host={host}\x01port={port}\x01auth=Bearer {access_token}\x01\x01"
