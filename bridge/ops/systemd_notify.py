"""Telling systemd how `serve` is doing (`Type=notify`): READY=1, STATUS=..., STOPPING=1, WATCHDOG=1.

The protocol is one datagram of `NAME=value` lines to the Unix socket systemd names in $NOTIFY_SOCKET
(sd_notify(3)); a name starting with `@` is in the abstract namespace. Where $NOTIFY_SOCKET is unset (a
terminal, a test, another supervisor) every call does nothing. The standard library is enough: the PyPI
packages for it are unmaintained or compile against libsystemd, and the whole protocol is a sendto().

The watchdog (`WatchdogSec=` in the unit) is on when $WATCHDOG_USEC is set and $WATCHDOG_PID, if set,
names this process: `serve` then pings at half the interval, and systemd restarts it if the pings stop.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def _address() -> str | None:
    """The notify socket's address as socket.sendto() takes it, or None outside systemd."""
    named = os.environ.get("NOTIFY_SOCKET", "")
    if not named:
        return None
    return "\0" + named[1:] if named.startswith("@") else named


def notify(*lines: str) -> bool:
    """Send `lines` (e.g. "READY=1", "STATUS=receiving") in one datagram; False when nobody listens.

    A failure is logged and never raised: the service runs on whether or not its supervisor hears it."""
    address = _address()
    if address is None:
        return False
    message = "\n".join(line.replace("\n", " ") for line in lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError as err:
        log.warning("could not tell systemd %r (NOTIFY_SOCKET=%s): %s", lines, os.environ.get("NOTIFY_SOCKET"), err)
        return False
    return True


def ready(status: str) -> bool:
    """Startup is complete: systemd marks the unit active and starts what waits for it."""
    return notify("READY=1", f"STATUS={status}")


def status(text: str) -> bool:
    """One line `systemctl status` shows under the unit."""
    return notify(f"STATUS={text}")


def stopping(status: str) -> bool:
    """Shutdown has begun (systemd then expects the process to end, not to answer)."""
    return notify("STOPPING=1", f"STATUS={status}")


def watchdog() -> bool:
    """This process is alive and well; due at least every watchdog_interval() seconds."""
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec=), or None when systemd watches no pings."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
