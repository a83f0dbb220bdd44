"""The field checks every kind of account shares (port, security, host, timeout, names, CA file).

The CLI and the admin pages run the same code (bridge/accounts/), so a bad port or a duplicate
description gets the same clear error everywhere, and nothing is stored until every field is valid.
Each error names the field it is about (FieldError), so a form can show it beside that field.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge.errors import FieldError, InputError
from bridge.input_checks import refuse_line_breaks
from bridge.net.connections import SECURITY_MODES


@contextmanager
def about(field: str) -> Iterator[None]:
    """An InputError raised inside is about `field` (the form field, named like the CLI option)."""
    try:
        yield
    except FieldError:
        raise
    except InputError as err:
        raise FieldError(field, str(err)) from None


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise InputError(f"port {port} is out of range (1-65535)")
    return port


def check_security(mode: str) -> str:
    if mode not in SECURITY_MODES:
        raise InputError(f"security {mode!r} is not one of: {', '.join(SECURITY_MODES)}")
    return mode


def check_host(host: str) -> str:
    host = host.strip()
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise InputError(f"host {host!r} is not a host name or address")
    return host


def check_timeout(seconds: float) -> float:
    if not 0 < seconds <= 600:
        raise InputError("timeout must be between 0 and 600 seconds")
    return seconds


def check_name(value: str, what: str) -> str:
    value = value.strip()
    refuse_line_breaks(**{what: value})
    if not value:
        raise InputError(f"the {what} cannot be empty")
    return value


def check_ca_file(path: str | None) -> str | None:
    if path and not Path(path).is_file():
        raise InputError(f"CA file {path!r} does not exist or is not a file")
    return path or None
