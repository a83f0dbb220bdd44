"""Registered OAuth clients (`oauth add`): validated once, the secret encrypted, never shown back."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from sqlmodel import Session, select

from bridge import audit, crypto
from bridge.accounts.oauth import providers
from bridge.errors import FieldError, InputError, NotFound
from bridge.input_checks import refuse_line_breaks
from models import OAuthClient


def _url(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InputError(f"{what} {value!r} is not an http(s) URL")
    return value


def service_account(text: str) -> tuple[str, str, str | None]:
    """(client email, private key, token URI) from a Google service account's JSON key file."""
    try:
        key = json.loads(text)
        return key["client_email"], key["private_key"], key.get("token_uri")
    except (ValueError, KeyError, TypeError):
        raise InputError("--service-account-file is not a Google service account key (JSON with client_email and "
                         "private_key)") from None


def add_client(session: Session, name: str, provider: str, client_id: str | None, *,
               client_secret: str | None = None, tenant: str | None = None, scopes: list[str] | None = None,
               authorize_url: str | None = None, token_url: str | None = None, device_url: str | None = None,
               service_account_key: str | None = None) -> OAuthClient:
    """A registered client. Google Workspace app-only access is a service account (`service_account_key`, its
    JSON key): its email is the client id, its private key the secret, encrypted like any secret."""
    if service_account_key:
        if provider != "google" or client_id or client_secret:
            raise InputError("a service account key is for --provider google, without a client id or secret")
        client_id, client_secret, key_token_url = service_account(service_account_key)
        token_url = token_url or key_token_url
    if not client_id:
        raise InputError("an OAuth client needs a --client-id (or a Google service account key)")
    name, client_id = name.strip(), client_id.strip()
    refuse_line_breaks(name=name, client_id=client_id, tenant=tenant)
    if not name or not client_id:
        raise InputError("an OAuth client needs a name and a --client-id")
    if session.exec(select(OAuthClient).where(OAuthClient.name == name)).first():
        raise FieldError("name", f"an OAuth client named {name!r} exists already")
    found = providers.endpoints(provider, tenant, _url(authorize_url, "--authorize-url"),
                                _url(token_url, "--token-url"), _url(device_url, "--device-url"))
    client = OAuthClient(name=name, provider=provider, client_id=client_id,
                         client_secret=crypto.encrypt(client_secret) if client_secret else None, tenant=tenant,
                         scopes=json.dumps(list(scopes or [])), authorize_url=found.authorize_url,
                         token_url=found.token_url, device_url=found.device_url)
    session.add(client)
    session.flush()
    audit.record(session, "account", f"oauth client {name}", "added")
    return client


def get_client(session: Session, name: str) -> OAuthClient:
    client = session.exec(select(OAuthClient).where(OAuthClient.name == name)).first()
    if client is None:
        raise NotFound(f"no OAuth client named {name!r} (replybridge oauth add {name} --provider ...)")
    return client


def configured_scopes(client: OAuthClient) -> list[str]:
    return list(json.loads(client.scopes or "[]"))


def client_json(client: OAuthClient) -> dict[str, object]:
    return {"name": client.name, "provider": client.provider, "client_id": client.client_id,
            "tenant": client.tenant, "scopes": configured_scopes(client), "authorize_url": client.authorize_url,
            "token_url": client.token_url, "device_url": client.device_url,
            "client_secret": "set" if client.client_secret else "not set"}
