"""Where Microsoft's and Google's endpoints are and which scopes mail needs: the presets of `oauth add`.

Pure: no I/O. `generic` takes every URL from the admin (and is how the tests point at a local server).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import InputError

PROVIDERS = ("microsoft", "google", "generic")
FLOWS = ("delegated", "app")
KINDS = ("smtp", "imap")

_MS = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
# delegated: a person signs in; offline_access brings the refresh token
MICROSOFT_DELEGATED = {"smtp": "https://outlook.office.com/SMTP.Send",
                       "imap": "https://outlook.office.com/IMAP.AccessAsUser.All"}
# app-only (client credentials): the permissions SMTP.SendAsApp / IMAP.AccessAsApp granted to the app
MICROSOFT_APP = "https://outlook.office365.com/.default"
GOOGLE_MAIL = "https://mail.google.com/"


@dataclass(frozen=True)
class Endpoints:
    authorize_url: str
    token_url: str
    device_url: str | None


def endpoints(provider: str, tenant: str | None, authorize_url: str | None, token_url: str | None,
              device_url: str | None) -> Endpoints:
    """The provider's endpoints; an explicit URL overrides the preset."""
    if provider == "microsoft":
        base = _MS.format(tenant=tenant or "organizations")
        return Endpoints(authorize_url or f"{base}/authorize", token_url or f"{base}/token",
                         device_url or f"{base}/devicecode")
    if provider == "google":
        return Endpoints(authorize_url or "https://accounts.google.com/o/oauth2/v2/auth",
                         token_url or "https://oauth2.googleapis.com/token",
                         device_url or "https://oauth2.googleapis.com/device/code")
    if provider == "generic":
        if not authorize_url or not token_url:
            raise InputError("a generic provider needs --authorize-url and --token-url")
        return Endpoints(authorize_url, token_url, device_url)
    raise InputError(f"provider {provider!r} is not one of: {', '.join(PROVIDERS)}")


def scopes(provider: str, kind: str, flow: str, configured: list[str]) -> list[str]:
    """The scopes to ask for: the configured ones, else the provider's preset for this use."""
    if configured:
        return configured
    if provider == "microsoft":
        if flow == "app":
            return [MICROSOFT_APP]
        return [MICROSOFT_DELEGATED[kind], "offline_access"]
    if provider == "google":
        return [GOOGLE_MAIL]
    return []


def device_flow_refused(provider: str) -> str | None:
    """Why the device flow cannot work for this provider, if it cannot."""
    if provider == "google":
        return ("Google does not allow the mail scope in the device flow: sign in with the button on the account's "
                "page (Sign in with Google) instead")
    return None
