"""Encryption of stored passwords and tokens (Fernet), and the key they hang on.

The key comes from the `secret_key` setting, else from a key file that `init` creates with mode
0600: the `secret_key_file` setting, by default `replybridge.key` beside the SQLite database (or in
the working directory for other databases). Plain secrets never reach a log, an exception text
or the output: `Secret` hides itself from repr and str.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import make_url

from bridge.config.settings import current
from bridge.errors import ConfigError


class Secret:
    """A plain secret that will not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


def key_file_path() -> Path:
    settings = current()
    if settings.secret_key_file:
        return settings.secret_key_file
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().with_name("replybridge.key")
    return Path("replybridge.key").resolve()


def ensure_key_file() -> Path | None:
    """Create the key file (0600) unless the key comes from the environment; return its path."""
    if current().secret_key:
        return None
    path = key_file_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
    return path


def _load_key() -> bytes:
    given = current().secret_key
    if given:
        return given.get_secret_value().strip().encode()
    path = key_file_path()
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        raise ConfigError(
            f"no secret key: set REPLYBRIDGE_SECRET_KEY or run `replybridge init` to create {path.name} "
            "beside the database") from None


@lru_cache(maxsize=4)
def _fernet(key: bytes) -> Fernet:
    try:
        return Fernet(key)
    except ValueError:
        raise ConfigError("the secret key is not a valid Fernet key (32 url-safe base64 bytes)") from None


def encrypt(plain: str) -> str:
    return _fernet(_load_key()).encrypt(plain.encode()).decode()


def decrypt(token: str) -> Secret:
    try:
        return Secret(_fernet(_load_key()).decrypt(token.encode()).decode())
    except InvalidToken:
        raise ConfigError(
            "a stored password cannot be decrypted with the current secret key (was the key changed?); "
            "set the password again") from None


def signing_key(purpose: str) -> bytes:
    """A key for one purpose (e.g. Message-ID tokens), derived from the secret key."""
    return hmac.new(_load_key(), f"replybridge:{purpose}".encode(), hashlib.sha256).digest()
