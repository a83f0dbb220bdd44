"""Search over 1,000,000 stored messages (pytest -m benchmark), SQLite and PostgreSQL: the page and the API
as they run it, for a recruiter and for an admin.

The mail: 1,000,000 routed inbound messages from 50,000 candidates (a name each from 200 first and 500
last names, 400 firms' domains and a common mail provider) to 21 employees, 1% Unassigned; subjects from a
few dozen templates around 40 roles; reply texts drawn from a vocabulary of 3,000 words with the skew of
real text (a few words in most messages, most words rare); six messages in ten say "thank"; each
message carries one of 50,000 ticket numbers (20 messages each); one in ten has a CV attached. The
queries, one of each kind a person types: a candidate's whole address, a name (first and last), a rare
word (a ticket number), two words, a prefix, and a common word. Each is requested through the ASGI
application in-process, signed in as a browser would (GET /search?q=...) and with a bearer token (GET
/api/v1/messages?q=...), as recruiter 1042 (their own messages and the Unassigned ones) and as an admin
(all). The baseline in the same run: GET /healthz. The issue's goal: a 95th percentile of at most 200 ms
for every query kind, on both databases; each kind is a row of the benchmarks' table.

The index is loaded as a bulk load would: on SQLite through the triggers as the rows go in, on PostgreSQL
by COPY with the GIN index built after the rows (building it at once is what CREATE INDEX is for; the
generated column is computed as each row goes in either way), then VACUUM (ANALYZE), which autovacuum runs
after such a load (run now, it does not run during the measurement).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection, Engine

from bridge.web.app import create_app
from models import Employee, InboundMessage
from tests.benchmarks import table, timing
from tests.helpers.bridge import Bridge
from tests.servers.web import PASSWORD, csrf_of

pytestmark = pytest.mark.benchmark

TOTAL = 1_000_000
CANDIDATES = 50_000
EMPLOYEES = 20  # besides 1042
DOMAINS = 400
VOCABULARY = 3_000
TEXTS = 4_000  # distinct reply texts, reused
RUNS, WARM_UP = 30, 3
GOAL_MS = 200.0
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
FIRST = ["Ana", "Ben", "Carla", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas"] * 20
LAST = [f"{stem}{suffix}" for stem in ("Lopez", "Meyer", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Sato",
                                        "Tanaka", "Ueda") for suffix in ("", "son", "ski", "ova", "ez", "er", "i",
                                                                         "an", "ek", "ic")] * 5
ROLES = [f"{level} {field}" for level in ("Junior", "Senior", "Lead", "Staff") for field in (
    "backend engineer", "designer", "data analyst", "accountant", "nurse", "teacher", "electrician",
    "sales manager", "recruiter", "product owner")]
SUBJECTS = ["Re: Interview for the {role} role", "Application: {role}", "Question about the {role} position",
            "Re: Your application as {role}", "Availability next week", "Re: Offer for {role}",
            "Documents for my application", "Re: Next steps"]
COMMON = ["the", "to", "and", "i", "you", "for", "a", "my", "is", "on", "in", "it", "be", "will", "at", "with",
          "interview", "monday", "tuesday", "friday", "week", "time", "available", "call", "team", "role", "start",
          "salary", "contract", "references", "portfolio", "question", "meeting", "schedule", "confirm"]
RAW = ("From: {sender}\r\nTo: jobs+1042@example.test\r\nSubject: {subject}\r\nMessage-ID: <{key}>\r\n"
       "Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")


def _domain(c: int) -> str:
    return "gmail.com" if c % 7 == 0 else f"firm{c % DOMAINS}.example"


def _texts(rnd: random.Random) -> list[str]:
    """Reply texts with real text's skew: the common words often, the rest of the vocabulary rarely."""
    rare = [f"{''.join(rnd.choices('bcdfghklmnprstvz', k=3))}{''.join(rnd.choices('aeiou', k=2))}"
            f"{''.join(rnd.choices('lmnrst', k=2))}" for _ in range(VOCABULARY - len(COMMON))]
    vocabulary = COMMON + rare
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    texts = []
    for i in range(TEXTS):
        opening = "Thank you for your message. " if i % 10 < 6 else "Hello, "
        texts.append(opening + " ".join(rnd.choices(vocabulary, weights, k=rnd.randrange(15, 60))) + ".")
    return texts


def _fill(engine: Engine, employee_ids: list[int]) -> None:
    """Bulk load: on SQLite SQLAlchemy core inserts of 5,000 rows, on PostgreSQL one COPY (an INSERT of a
    million rows there costs a quarter of an hour, COPY a few minutes: the load is not what is measured)."""
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_inbound_message_search"))
    with engine.begin() as conn:
        if postgres:
            _copy(conn, _rows(employee_ids))
        else:
            for chunk in _chunks(_rows(employee_ids)):
                conn.execute(insert(InboundMessage), chunk)
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SET maintenance_work_mem = '512MB'"))
            conn.execute(text("CREATE INDEX ix_inbound_message_search ON inbound_message USING gin (search_vector)"))
            # what autovacuum does after such a load, done now so it does not run during the measurement
            conn.execute(text("VACUUM (ANALYZE) inbound_message"))


def _chunks(rows: Iterator[dict], size: int = 5_000) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _copy(conn: Connection, rows: Iterator[dict]) -> None:
    """PostgreSQL's COPY through psycopg: the columns of the first row, every row in that order."""
    first = next(rows)
    columns = list(first)
    with conn.connection.driver_connection.cursor() as cur, \
            cur.copy(f"COPY inbound_message ({', '.join(columns)}) FROM STDIN") as copy:
        for row in itertools.chain([first], rows):
            copy.write_row([row[c] for c in columns])


def _rows(employee_ids: list[int]) -> Iterator[dict]:
    """The million messages (module docstring), oldest first."""
    rnd = random.Random(14)
    texts = _texts(rnd)
    for i in range(TOTAL):
        c = (i * 7_919) % CANDIDATES
        first, last = FIRST[c % len(FIRST)], LAST[c // len(FIRST) % len(LAST)]
        sender, name = f"{first.lower()}.{last.lower()}{c}@{_domain(c)}", f"{first} {last}"
        subject = SUBJECTS[i % len(SUBJECTS)].format(role=ROLES[c % len(ROLES)])
        body = f"{texts[(i * 31) % TEXTS]} Ticket {i % 50_000:05d}."
        received = NOW - dt.timedelta(seconds=(TOTAL - i) * 30 + rnd.randrange(30))
        unassigned = i % 100 == 0
        key = f"in{i}@mail.example"
        raw = RAW.format(sender=sender, subject=subject, key=key, body=body[:200]).encode()
        yield {
            "dedup_key": key, "message_id": f"<{key}>", "raw": raw, "size": len(raw), "source": "smtp",
            "envelope_to": "[]", "received_at": received, "from_addr": sender, "from_name": name,
            "subject": subject, "reply_text": body,
            "attachment_names": f"CV_{last}_{first}.pdf" if i % 10 == 3 else None, "kind": "reply",
            "route": "unassigned" if unassigned else "employee", "rule": "none" if unassigned else "known_sender",
            "reason": "no rule matched", "employee_id": None if unassigned else employee_ids[c % len(employee_ids)],
            "flagged": False, "triage": "open" if unassigned else None, "routed_at": received,
            "delivery": "none", "delivery_attempts": 0, "route_attempts": 0}


def _queries(engine: Engine) -> dict[str, str]:
    """One query of each kind, taken from the stored mail."""
    with engine.connect() as conn:
        sender, name = conn.execute(select(InboundMessage.from_addr, InboundMessage.from_name)
                                    .where(InboundMessage.id == 123_457)).one()
    return {"a candidate's address": sender, "a name": name, "a rare word": "ticket 01234",
            "two words": "interview monday", "a prefix": "portf", "a common word": "thank"}


def _p95_ms(call: Callable[[], object]) -> float:
    return timing.p95_ms(call, RUNS, WARM_UP)


def _signed_in(client: TestClient, email: str) -> None:
    form = {"email": email, "password": PASSWORD, "csrf_token": csrf_of(client.get("/login").text)}
    r = client.post("/login", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text


def _requests(app: object, bridge: Bridge) -> dict[str, Callable[[str], object]]:
    """GET the page and the API for a query, as recruiter 1042 and as the admin; each asserts a 200."""
    clients = {who: TestClient(app, base_url="http://testserver") for who in ("recruiter", "admin")}
    _signed_in(clients["recruiter"], "ana@example.test")
    _signed_in(clients["admin"], "admin@example.test")
    tokens = {"recruiter": bridge.run("token", "create", "bench-recruiter", "--employee", "1042").stdout.strip(),
              "admin": bridge.run("token", "create", "bench-admin", "--admin").stdout.strip()}

    def page(who: str) -> Callable[[str], object]:
        def get(q: str) -> object:
            r = clients[who].get("/search", params={"q": q})
            assert r.status_code == 200, r.text[:500]
            return r
        return get

    def api(who: str) -> Callable[[str], object]:
        def get(q: str) -> object:
            r = clients[who].get("/api/v1/messages", params={"q": q},
                                 headers={"Authorization": f"Bearer {tokens[who]}"})
            assert r.status_code == 200, r.text[:500]
            return r
        return get

    return {f"{surface} {who}": make(who) for surface, make in (("page", page), ("API", api))
            for who in ("recruiter", "admin")}


def test_search_speed(bridge: Bridge) -> None:
    bridge.run("employee", "add", "--number", "1", "--name", "Ada Admin", "--email", "admin@example.test", "--admin")
    for number in (1, 1042):
        bridge.run("employee", "set-password", str(number), "--password-stdin", stdin=PASSWORD + "\n")
    engine = bridge.engine()
    with engine.begin() as conn:
        conn.execute(insert(Employee), [{"number": 2000 + i, "name": f"Recruiter {i:02d}",
                                         "email": f"r{i}@example.test", "active": True, "admin": False,
                                         "delivery": "none", "created_at": NOW} for i in range(EMPLOYEES)])
        employee_ids = list(conn.execute(select(Employee.id).where(Employee.number != 1)).scalars())
    started = time.perf_counter()
    _fill(engine, employee_ids)
    fill_s = time.perf_counter() - started
    queries = _queries(engine)
    name = "SQLite" if engine.dialect.name == "sqlite" else "PostgreSQL"
    lines = [f"\n{name}: {TOTAL:,} inbound messages, loaded and indexed in {fill_s:.0f} s; 95th percentiles of {RUNS}:"]
    met = True
    with TestClient(create_app(engine), base_url="http://testserver") as client:
        healthz_ms = _p95_ms(lambda: client.get("/healthz"))
        lines.append(f"  GET /healthz {healthz_ms:.1f} ms")
        requests = _requests(client.app, bridge)
        for kind, q in queries.items():
            api_admin = requests["API admin"](q).json()
            assert api_admin["items"], f"{kind} ({q!r}) finds nothing"
            figures = {who: _p95_ms(lambda call=call, q=q: call(q)) for who, call in requests.items()}
            worst = max(figures.values())
            shown = ", ".join(f"{who} {ms:.0f} ms" for who, ms in figures.items())
            lines.append(f"  {kind:<22} {q!r:<40} {shown}")
            met &= table.record(f"Search, {kind} (`{q}`), p95, {TOTAL:,} stored, {name}",
                                f"GET /healthz {healthz_ms:.1f} ms", shown, f"{worst / healthz_ms:.1f}x /healthz",
                                f"<= {GOAL_MS:.0f} ms", worst <= GOAL_MS)
    lines.append(f"  goal: at most {GOAL_MS:.0f} ms")
    print("\n".join(lines))
    assert met
