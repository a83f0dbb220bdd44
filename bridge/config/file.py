"""The settings file and the environment, read with the standard library alone.

Why apart from `settings.py`: an MTA starts `replybridge ingest` once per message, and pydantic-settings
costs it more than a tenth of a second to load. `ingest` needs two raw values (its socket and the database
URL) before it knows whether it will store anything itself; everything else reads `settings.current()`,
which takes the file's values from here, so the file has one reader.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from bridge.errors import ConfigError

ENV_PREFIX = "REPLYBRIDGE_"
CONFIG_VARIABLE = ENV_PREFIX + "CONFIG"  # the path of the TOML file; unset: no file


def env_name(setting: str) -> str:
    """The environment variable of a setting: `smtp_port` is REPLYBRIDGE_SMTP_PORT."""
    return ENV_PREFIX + setting.upper()


def config_path() -> Path | None:
    """The settings file named by REPLYBRIDGE_CONFIG, or None when no file is named."""
    named = os.environ.get(CONFIG_VARIABLE, "").strip()
    return Path(named) if named else None


def file_values() -> dict[str, object]:
    """The settings file's values by setting name ({} without a file); a clear error for a missing or bad file."""
    path = config_path()
    if path is None:
        return {}
    try:
        stat = path.stat()
    except OSError as err:
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: cannot read the settings file ({err.strerror})") from None
    return dict(_parsed(path, stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=4)
def _parsed(path: Path, mtime_ns: int, size: int) -> tuple[tuple[str, object], ...]:
    """The file parsed once per version of it (its modification time and size are in the key)."""
    try:
        with path.open("rb") as f:
            values = tomllib.load(f)
    except OSError as err:
        raise ConfigError(f"{CONFIG_VARIABLE}={path}: cannot read the settings file ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    nested = sorted(key for key, value in values.items() if isinstance(value, dict))
    if nested:
        raise ConfigError(f"{path}: settings are plain `name = value` lines; [{nested[0]}] is a table")
    return tuple(values.items())


def raw(setting: str) -> object | None:
    """One setting as given (the environment wins over the file), unchecked; None where neither gives it."""
    value = os.environ.get(env_name(setting))
    return value if value is not None else file_values().get(setting)
