"""/readyz: whether this `serve` does its work now, and if not, what is wrong, in words an admin can act on.

/healthz says only that the pages and the database answer. /readyz looks at each part a reply passes:
the database, this serve's SMTP receiver (it greets on its port; the receiver runs in serve's first
process, the pages in another, so it is asked over TCP as a sender would), each IMAP folder the bridge
polls (a live poller holds its lease, and its last poll did not fail), and the worker (it finished a run,
or sent a message, lately: bridge.ops.worker_clock). 200 {"status": "ready", "checks": {...}} or
503 {"status": "not ready", "problems": [...], "checks": {...}}.

A probe asks every few seconds, so it costs two small queries and one connection. No session is needed,
and nothing secret is shown: the database URL's password is masked.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge.config.settings import Settings, current
from bridge.inbound.imap.folder_state import holder_ended, owner_process
from bridge.ops import worker_clock
from models import ImapFolderState, ImapServer, aware, utcnow

router = APIRouter()

RECEIVER_TIMEOUT_S = 2.0  # a receiver that takes longer to greet is not taking mail in
WORKER_OVERDUE_MIN_S = 60.0  # unless the worker_overdue_after setting says otherwise:
WORKER_OVERDUE_RUNS = 10  # overdue after this many intervals, and never sooner than the minimum
OK, FAILING, NOT_CHECKED = "ok", "failing", "not checked"


@dataclass
class Readiness:
    """Each check's state (ok, failing, not checked: why) and every problem found, in words."""

    checks: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def note(self, check: str, problems: list[str], unchecked: str | None = None) -> None:
        self.checks[check] = f"{NOT_CHECKED}: {unchecked}" if unchecked else FAILING if problems else OK
        self.problems += problems


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    engine: Engine = request.app.state.engine
    settings = current()
    found = Readiness()
    database_problems = _database(engine)
    found.note("database", database_problems)
    found.note("receiver", _receiver(settings))
    if database_problems:
        found.note("poll_folders", [], unchecked="the database does not answer")
    else:
        try:
            found.note("poll_folders", _poll_folders(engine))
        except Exception as err:  # noqa: BLE001 - the database went away since it answered
            found.note("poll_folders", [f"the poll folders could not be read: {_first_line(err)}"])
    found.note("worker", *_worker(settings))
    if found.problems:
        return JSONResponse({"status": "not ready", "problems": found.problems, "checks": found.checks},
                            status_code=503)
    return JSONResponse({"status": "ready", "checks": found.checks})


def _database(engine: Engine) -> list[str]:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - whatever fails, the database does not answer
        return [f"the database does not answer ({engine.url.render_as_string(hide_password=True)}): "
                f"{_first_line(err)}. Is its server running and reachable, and is the database_url setting right?"]
    return []


def _first_line(err: Exception) -> str:
    """The driver's own words (SQLAlchemy's wrapping adds the statement and a link), their first line."""
    said = str(getattr(err, "orig", None) or err).strip()
    return (said.splitlines() or [type(err).__name__])[0][:300]


def _receiver(settings: Settings) -> list[str]:
    """This serve's SMTP port greets with 220 (its host may be a wildcard: then it is asked on loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.smtp_host, settings.smtp_host)
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with socket.create_connection((host, settings.smtp_port), timeout=RECEIVER_TIMEOUT_S) as conn:
            greeting = conn.makefile("rb").readline(512)
            conn.sendall(b"QUIT\r\n")
    except TimeoutError:
        return [f"the SMTP receiver on {where} does not greet within {RECEIVER_TIMEOUT_S:.0f} s: mail sent to it "
                "waits; see serve's log"]
    except OSError as err:
        return [f"the SMTP receiver on {where} cannot be reached ({err.strerror or err}): mail sent to it is not "
                "taken in; is serve running, and are the smtp_host and smtp_port settings right?"]
    if not greeting.startswith(b"220"):
        said = greeting.decode("ascii", "replace").strip()[:200] or "nothing"
        return [f"the SMTP receiver on {where} answered {said!r} instead of its 220 greeting: is another "
                "program on that port?"]
    return []


def _poll_folders(engine: Engine) -> list[str]:
    """Each polled folder: failing (its last poll's error) or without a live holder of its lease."""
    now = utcnow()
    joined = and_(ImapFolderState.imap_server_id == ImapServer.id, ImapFolderState.folder == ImapServer.poll_folder)
    with Session(engine) as session:
        rows = session.exec(select(ImapServer, ImapFolderState).outerjoin(ImapFolderState, joined)
                            .where(ImapServer.poll_folder.is_not(None)).order_by(ImapServer.name)).all()
    problems = []
    for server, state in rows:
        what = f"IMAP server {server.name!r} ({server.host}:{server.port}), folder {server.poll_folder!r}"
        problem = _folder_problem(state, now)
        if problem:
            problems.append(f"{what}: {problem}")
    return problems


def _folder_problem(state: ImapFolderState | None, now: dt.datetime) -> str | None:
    if state is None:
        return ("no poller has taken it up yet (a running serve does within 10 s of the set-up; see its log if "
                "this stays)")
    if state.last_error:
        return f"its last poll failed: {state.last_error}"
    if not state.lease_owner or state.lease_until is None or aware(state.lease_until) < now:
        return "no poller holds it: is a serve running, and does its log name this server?"
    holder = owner_process(state.lease_owner)
    if holder and holder_ended(state.lease_owner):
        return (f"its lease names process {holder[1]} on {holder[0]}, which is not running; a live poller takes "
                f"it over once the lease runs out at {aware(state.lease_until):%H:%M:%S} UTC")
    return None


def _worker(settings: Settings) -> tuple[list[str], str | None]:
    quiet = worker_clock.since()
    if quiet is None:
        return [], "no worker is scheduled in this process"
    overdue = settings.worker_overdue_after or max(WORKER_OVERDUE_MIN_S, WORKER_OVERDUE_RUNS * settings.worker_interval)
    if quiet.seconds <= overdue:
        return [], None
    since = f"in {quiet.seconds:.0f} s" if quiet.ran else f"since its schedule began {quiet.seconds:.0f} s ago"
    return [f"the worker has not finished a run {since} (it runs every {settings.worker_interval:g} s; overdue "
            f"after {overdue:g} s): a run may hang on a server that does not answer; see serve's log"], None
