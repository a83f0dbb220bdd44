"""The typed settings: each one's name, type, default and check, in one place (pydantic-settings).

Sources, the first that gives a value wins: the environment (REPLYBRIDGE_<NAME>), then the TOML file that
REPLYBRIDGE_CONFIG names (`name = value` lines, the same names in lower case), then the default. A bad value
is a ConfigError at start naming the setting and where it came from; an unknown name in the file is one too
(a misspelt setting would otherwise be ignored without a word).

`current()` builds the settings again only when the environment's REPLYBRIDGE_* variables or the file
change, so reading them where they are used costs a dictionary look-up.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

from bridge.config import file
from bridge.errors import ConfigError
from models.url import DEFAULT_URL, normalized_url

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Port = Annotated[int, Field(ge=1, le=65535)]
SECRET_NAMES = frozenset({"secret_key", "metrics_token"})  # never printed; the database URL's password neither


class Settings(BaseSettings):
    """Every setting of the service (the README's "Settings" table lists the same names)."""

    model_config = SettingsConfigDict(env_prefix=file.ENV_PREFIX, extra="forbid", frozen=True,
                                      validate_default=True)

    database_url: str = Field(DEFAULT_URL, description="the database (SQLite file or PostgreSQL)")
    secret_key: SecretStr | None = Field(None, description="the key of stored secrets; unset: the key file")
    secret_key_file: Path | None = Field(None, description="the key file; unset: replybridge.key beside "
                                         "the SQLite database")
    smtp_host: str = Field("127.0.0.1", description="where serve's SMTP receiver listens")
    smtp_port: Port = 2525
    smtp_max_bytes: int | None = Field(None, gt=0, description="larger messages are refused with 552; "
                                       "unset: 25 MiB")
    smtp_tls_cert: Path | None = Field(None, description="with smtp_tls_key: the receiver offers STARTTLS")
    smtp_tls_key: Path | None = None
    smtp_connection_log: bool = Field(False, description="aiosmtpd's line per connection and command")
    ingest_socket: str | None = Field(None, description="where serve listens for ingest; unset: beside the "
                                      "SQLite database; empty: nowhere")
    web_host: str = Field("127.0.0.1", description="where serve's web pages and API listen")
    web_port: Port = 8025
    web_https: bool = Field(False, description="behind an HTTPS proxy: the session cookie goes over HTTPS only")
    web_trusted_proxies: str = Field("", description="proxies whose X-Forwarded-For is believed")
    worker_interval: float = Field(5.0, ge=0.2, description="seconds between the worker's runs")
    worker_overdue_after: float | None = Field(None, gt=0, description="seconds without a worker run finished "
                                               "before /readyz says so; unset: max(60, 10 x worker_interval)")
    log_format: Literal["text", "json"] = Field("text", description="text lines, or one JSON object a line")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_allow: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
        description="addresses allowed to read /metrics without the token (comma-separated)")
    metrics_token: SecretStr | None = Field(None, description="a bearer token that may read /metrics from "
                                            "anywhere")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment, then the settings file (read by `file.py`, its one reader); no `.env` in the working
        directory: a service's working directory is rarely where its settings are (systemd has
        EnvironmentFile= for that)."""
        return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=file.file_values())

    @field_validator("secret_key", "secret_key_file", "smtp_max_bytes", "smtp_tls_cert", "smtp_tls_key",
                     "metrics_token", "worker_overdue_after", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        return normalized_url(value)

    @field_validator("metrics_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("metrics_allow", mode="after")
    @classmethod
    def _networks(cls, value: tuple[IPNetwork, ...]) -> tuple[IPNetwork, ...]:
        return tuple(ipaddress.ip_network(str(net), strict=False) for net in value)

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if bool(self.smtp_tls_cert) != bool(self.smtp_tls_key):
            raise ValueError("smtp_tls_cert and smtp_tls_key go together: give both, or neither")
        for path in (self.smtp_tls_cert, self.smtp_tls_key):
            if path is not None and not path.is_file():
                raise ValueError(f"smtp_tls_cert/smtp_tls_key: {path} is not a readable file")
        return self


def current() -> Settings:
    """The settings now; a ConfigError naming the setting when one is bad."""
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(file.ENV_PREFIX)))
    path = file.config_path()
    try:
        stat = path.stat() if path else None
    except OSError:
        stat = None  # file.file_values() says what is wrong with it
    return _built(environment, (stat.st_mtime_ns, stat.st_size) if stat else None)


@lru_cache(maxsize=8)
def _built(environment: tuple[tuple[str, str], ...], file_version: tuple[int, int] | None) -> Settings:
    """Settings for one state of the environment and the file (the arguments are the cache key)."""
    try:
        return Settings()
    except ValidationError as err:
        raise ConfigError(_described(err)) from None


def _described(err: ValidationError) -> str:
    """The first problem, naming the setting as the person wrote it (variable or file line) and what is wrong."""
    problem = err.errors()[0]
    name = str(problem["loc"][0]) if problem["loc"] else ""
    reason = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        return f"{file.config_path()}: unknown setting {name!r} (see the README's Settings)"
    if not name:
        return f"settings: {reason}"
    shown = "********" if name in SECRET_NAMES else repr(problem.get("input"))
    return f"{where(name)} = {shown}: {reason}"


def masked_url(url: str) -> str:
    """A database URL as messages and output show it: its password masked."""
    return make_url(url).render_as_string(hide_password=True)


def where(name: str) -> str:
    """Where a setting's value comes from, as a person would look for it."""
    if file.env_name(name) in os.environ:
        return f"{file.env_name(name)} (environment)"
    if name in file.file_values():
        return f"{name} in {file.config_path()}"
    return f"{name} (default)"


def shown(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, value, source) of every setting, secrets masked, for `config show`."""
    rows = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name in SECRET_NAMES:
            text = "" if value is None else "********"
        elif name == "database_url":
            text = masked_url(value)
        elif isinstance(value, tuple):
            text = ",".join(str(v) for v in value)
        else:
            text = "" if value is None else str(value)
        source = where(name)
        rows.append((name, text, "default" if source.endswith("(default)") else source))
    return rows
