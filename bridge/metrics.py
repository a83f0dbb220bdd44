"""The service's Prometheus metrics that code moves where things happen, each defined once, here, low enough for
every room to count (docs/ARCHITECTURE.md, "Metrics and step lines").

`serve` runs three processes and /metrics is served by one of them (the services process), so a count made
in the receiver or the routing process must reach it. prometheus-client's multiprocess mode does that: each
process writes its values to files of its own in one directory (PROMETHEUS_MULTIPROC_DIR) and a scrape adds
them up. `serve` makes that directory, fresh and private, before anything counts and before its children
start (`share_between_processes`): in systemd's RuntimeDirectory where there is one (no cleaner of old temporary
files reaches it), else in the temporary directory. It removes it on stopping; the next `serve` removes one
left by a `serve` that was killed. A child that ends leaves its counts there, so a restarted one adds to them
and nothing is lost or counted twice; only its live gauges go (`process_ended`). Counting is best effort: a
failure to count is logged once and never stops the work counted.

A process outside `serve` (`worker`, `ingest`, any other command) exports nothing, so counting there does
nothing, and costs no import: prometheus-client takes 30 ms and more to load.

What the database holds (Unassigned open, the Mail Log by status, the webhook backlog, each folder's waiting
mail) is not counted here but read at each scrape (bridge.web.metrics_page): a count kept beside the rows
would drift from them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

from bridge.leases import process_running

log = logging.getLogger(__name__)
P = ParamSpec("P")

DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable: the children inherit it
DIR_PREFIX = "replybridge-metrics-"  # then the pid of the `serve` that made it
PREFIX = "replybridge_"
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # an SMTP or IMAP round, in seconds

_lock = threading.Lock()
_built: list[_Metrics | None] = []  # empty until the first count decides whether this process counts
_failed: list[str] = []  # the counts that failed once in this process (each is logged once)


class _Metrics:
    """Every metric, made on the first count of a process that shares them (`_metrics`)."""

    def __init__(self) -> None:
        # prometheus-client picks how it stores values when first imported: only once the directory is set
        from prometheus_client import Counter, Gauge, Histogram

        self.received = Counter(f"{PREFIX}messages_received", "Messages received, by source (smtp, imap, pipe) "
                                "and result (stored, duplicate, refused)", ["source", "result"], registry=None)
        self.routed = Counter(f"{PREFIX}messages_routed", "Messages routed, by route (employee, unassigned, "
                              "bounce) and the router's rule", ["route", "rule"], registry=None)
        self.routing_failures = Counter(f"{PREFIX}routing_failures", "Routings that failed (the message stays "
                                        "stored and is tried again; after 5 failures it goes to Unassigned)",
                                        registry=None)
        self.error_replies = Counter(f"{PREFIX}smtp_receiver_error_replies", "The SMTP receiver's 4xx and 5xx "
                                     "replies, by class and code", ["class", "code"], registry=None)
        self.send = Histogram(f"{PREFIX}send_duration_seconds", "One SMTP transaction of an outbound message, by "
                              "outcome (sent, failed)", ["outcome"], buckets=DURATION_BUCKETS, registry=None)
        self.append = Histogram(f"{PREFIX}sent_folder_append_duration_seconds", "One APPEND of a sent message to "
                                "its alias's Sent folder", buckets=DURATION_BUCKETS, registry=None)
        self.idle = Gauge(f"{PREFIX}imap_idle", "1 while a poll folder's watcher waits in IDLE; 0 while it polls, "
                          "reconnects or is down", ["server", "folder"], multiprocess_mode="livemax", registry=None)
        self.refresh_failures = Counter(f"{PREFIX}oauth_refresh_failures", "OAuth access-token refreshes that "
                                        "failed, by account kind (smtp, imap)", ["kind"], registry=None)


def _metrics() -> _Metrics | None:
    """The metrics where this process shares them (under `serve`), else None."""
    if not _built:
        with _lock:
            if not _built:
                _built.append(_Metrics() if shared_dir() is not None else None)
    return _built[0]


def shared_dir() -> Path | None:
    """The directory the processes of this `serve` count into; None outside `serve`."""
    value = os.environ.get(DIR_VARIABLE)
    return Path(value) if value else None


def share_between_processes() -> Path:
    """Count into a fresh private directory from now on, in this process and the children it starts later."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus-client was loaded before the metrics directory was set: set it first")
    _forget_dead_serves()
    directory = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=_parent()))  # 0700, empty
    os.environ[DIR_VARIABLE] = str(directory)
    with _lock:
        _built.clear()
    return directory


def _parent() -> Path:
    """systemd's RuntimeDirectory (RUNTIME_DIRECTORY, the first where it names several), else the temporary
    directory."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(runtime) if runtime else Path(tempfile.gettempdir())


def _forget_dead_serves() -> None:
    """The directories of `serve`s that could not remove their own (killed, or the machine stopped)."""
    for old in _parent().glob(f"{DIR_PREFIX}*"):
        pid = old.name.removeprefix(DIR_PREFIX).partition("-")[0]
        with contextlib.suppress(OSError):  # another serve starting removed it first
            if pid.isdigit() and not process_running(int(pid)) and old.stat().st_uid == os.getuid():
                shutil.rmtree(old)


def process_ended(pid: int | None) -> None:
    """A child of `serve` ended: its live gauges go; its counts stay in the sums."""
    if pid is None or shared_dir() is None:
        return
    from prometheus_client import multiprocess  # loaded already by the counting in this process, or cheap now

    multiprocess.mark_process_dead(pid)


def stop_sharing(directory: Path) -> None:
    """`serve` ends: the directory goes with it."""
    if os.environ.get(DIR_VARIABLE) == str(directory):
        del os.environ[DIR_VARIABLE]
    shutil.rmtree(directory, ignore_errors=True)


def _best_effort(count: Callable[P, None]) -> Callable[P, None]:
    """A count that fails (its directory removed under it, say) is logged once, and the work goes on."""
    @functools.wraps(count)
    def counting(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            count(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a metric never stops the work it counts
            if count.__name__ not in _failed:
                _failed.append(count.__name__)
                log.warning("counting %s failed (said once; the work goes on)", count.__name__, exc_info=True)
    return counting


@_best_effort
def received(source: str, result: str, count: int = 1) -> None:
    """Messages taken in by a source: stored, duplicate (stored before), or refused (not stored)."""
    if count and (m := _metrics()) is not None:
        m.received.labels(source, result).inc(count)


@_best_effort
def error_reply(code: str) -> None:
    """The SMTP receiver answered 4xx or 5xx."""
    if (m := _metrics()) is not None:
        m.error_replies.labels(f"{code[0]}xx", code).inc()


@_best_effort
def routed(route: str, rule: str) -> None:
    """A message was routed (counted once its routing committed)."""
    if (m := _metrics()) is not None:
        m.routed.labels(route, rule).inc()


@_best_effort
def routing_failed() -> None:
    if (m := _metrics()) is not None:
        m.routing_failures.inc()


@_best_effort
def send_took(seconds: float, sent: bool) -> None:
    """One SMTP transaction of an outbound message, from taking the connection to the server's answer."""
    if (m := _metrics()) is not None:
        m.send.labels("sent" if sent else "failed").observe(seconds)


@_best_effort
def append_took(seconds: float) -> None:
    """One APPEND to a Sent folder."""
    if (m := _metrics()) is not None:
        m.append.observe(seconds)


@_best_effort
def idling(server: str, folder: str, now: bool) -> None:
    """A watcher entered (True) or left (False) IDLE on a poll folder."""
    if (m := _metrics()) is not None:
        m.idle.labels(server, folder).set(1 if now else 0)


@_best_effort
def token_refresh_failed(kind: str) -> None:
    if (m := _metrics()) is not None:
        m.refresh_failures.labels(kind).inc()


def families() -> list[Any]:
    """The counted metrics of every process of this `serve`, added up (prometheus-client's metric families);
    nothing outside `serve`."""
    directory = shared_dir()
    if directory is None:
        return []
    from prometheus_client import multiprocess  # loaded already where /metrics is served

    return list(multiprocess.MultiProcessCollector(None, path=str(directory)).collect())
