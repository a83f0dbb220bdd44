"""The loop probe on a schedule, against real servers: the alias's SMTP account is an MX that files into a
Dovecot catch-all folder, which the bridge's pollers watch as `serve` does. A due probe comes back and its time
is kept (a restart does not probe again), a broken leg is an error report naming it, a good probe clears it,
and with the setting off nothing is probed."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bridge.checks.loop_probe import LEG_LOST, LEG_NOT_PICKED_UP, LEG_REFUSED
from bridge.ops import loop_probes, schedule
from bridge.ops.error_reports import report_mail
from bridge.ops.pollers import Pollers
from models import AlertState, Alias, LoopProbe, utcnow
from models.db import make_engine
from tests.helpers.at_once import errors_of
from tests.helpers.bridge import Bridge
from tests.helpers.setup_steps import add_account, add_alias, add_poller
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot, start_dovecot
from tests.servers.mailbox_mx import MailboxMx
from tests.servers.smtp_peers import SmtpPeer

BACK = 15.0  # seconds a probe that comes back may take (it returns as soon as it is routed)
LOST = 1.5  # seconds a probe that does not come back waits in these tests
LATER = dt.timedelta(hours=6)  # the setting below: a round this much later finds the alias due again

needs_dovecot = pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})")


@pytest.fixture
def catchall(tmp_path: Path) -> Iterator[Dovecot]:
    server = start_dovecot(tmp_path / "imap", extra_folders=("Catchall",))
    yield server
    server.stop()


@pytest.fixture
def mx(catchall: Dovecot) -> Iterator[MailboxMx]:
    running = MailboxMx(catchall, "Catchall").start()
    yield running
    running.stop()


def _through_the_catchall(b: Bridge, mx: MailboxMx, catchall: Dovecot, monkeypatch: pytest.MonkeyPatch) -> int:
    """Alias "Ana jobs" sends through the MX, which files into the catch-all the bridge polls; a probe every 6 h.
    Returns the alias's id."""
    add_account(b, mx.host, mx.port, monkeypatch, name="mx")
    add_alias(b, smtp="mx")
    add_poller(b, catchall, monkeypatch, folder="Catchall")
    b.run("settings", "set", "loop_probe_hours", "6")
    return _alias_id(b.engine(), "Ana jobs")


def _through(b: Bridge, peer: SmtpPeer, monkeypatch: pytest.MonkeyPatch, hours: str = "6") -> int:
    """Alias "Ana jobs" sends through `peer` (whose mail never comes back); returns its id."""
    add_account(b, peer.host, peer.port, monkeypatch, name="peer")
    add_alias(b, smtp="peer")
    b.run("settings", "set", "loop_probe_hours", hours)
    return _alias_id(b.engine(), "Ana jobs")


def _alias_id(engine: Engine, description: str) -> int:
    with Session(engine) as s:
        return s.exec(select(Alias.id).where(Alias.description == description)).one()


@contextmanager
def _pollers(engine: Engine) -> Iterator[Pollers]:
    """The IMAP watchers of a running `serve`."""
    stop = threading.Event()
    running = Pollers(engine, stop).start()
    try:
        yield running
    finally:
        stop.set()
        running.join(10)


def _row(engine: Engine, alias_id: int) -> LoopProbe:
    with Session(engine) as s:
        return s.exec(select(LoopProbe).where(LoopProbe.alias_id == alias_id)).one()


def _condition(engine: Engine, alias_id: int) -> AlertState | None:
    with Session(engine) as s:
        return s.exec(select(AlertState).where(AlertState.key == f"loop:{alias_id}")).first()


def _report_errors_to(b: Bridge, peer: SmtpPeer) -> None:
    """Error reports on, mailed through `peer` as the database-wide account."""
    b.run("smtp", "add", "wide", "--host", peer.host, "--port", str(peer.port), "--security", "none", "--timeout",
          "5", "--default")
    b.run("settings", "set", "report_to", "admin@example.test")
    b.run("settings", "set", "report_from", "bridge@example.test")
    b.run("settings", "set", "report_errors", "on")


def _mail_text(peer: SmtpPeer, index: int = -1) -> str:
    message = email.message_from_bytes(peer.received[index].data, policy=email.policy.default)
    return message.get_content()


def _until(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


@needs_dovecot
def test_a_due_probe_comes_back_and_the_next_waits_its_hours(bridge: Bridge, catchall: Dovecot, mx: MailboxMx,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    alias_id = _through_the_catchall(bridge, mx, catchall, monkeypatch)
    engine = bridge.engine()
    before = utcnow()
    with _pollers(engine):
        [outcome] = loop_probes.run_round(engine, wait=BACK)
        report = outcome.report
        assert report.ok, report.lines()
        assert "Came back by imap" in "\n".join(report.lines()) and "Routed to employee 1042" in report.steps[-1]
        row = _row(engine, alias_id)
        assert row.ok and row.broken_leg is None and row.message_id == report.message_id
        assert before <= row.started_at.replace(tzinfo=dt.UTC) <= row.finished_at.replace(tzinfo=dt.UTC)
        assert row.lease_owner is None and row.lease_until is None
        # it leaves nothing behind: its stored copy is removed, no recruiter, no Unassigned, no Mail Log
        assert bridge.json("messages", "list") == [] and bridge.json("log") == []
        assert _condition(engine, alias_id) is None

        restarted = make_engine(bridge.url)  # another process on the same database: the time is kept
        try:
            assert loop_probes.run_round(restarted, wait=BACK) == []
            assert loop_probes.run_round(restarted, wait=BACK, now=utcnow() + LATER - dt.timedelta(minutes=2)) == []
        finally:
            restarted.dispose()
        assert mx.filed == 1

        [again] = loop_probes.run_round(engine, wait=BACK, now=utcnow() + LATER)
        assert again.report.ok, again.report.lines()
    assert mx.filed == 2 and len(catchall.folder_messages("Catchall")) == 2


@needs_dovecot
def test_a_probe_no_poller_picks_up_is_reported_and_a_good_one_clears_it(lite_bridge: Bridge, catchall: Dovecot,
                                                                        mx: MailboxMx, smtp_peer,  # noqa: ANN001
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    alias_id = _through_the_catchall(lite_bridge, mx, catchall, monkeypatch)
    reports = smtp_peer("accept")
    _report_errors_to(lite_bridge, reports)
    engine = lite_bridge.engine()

    [lost] = loop_probes.run_round(engine, wait=LOST)  # no `serve` watches the catch-all
    assert lost.report.broken_leg == LEG_NOT_PICKED_UP, lost.report.lines()
    assert "catchall/Catchall (no poller has looked at it yet)" in lost.report.diagnosis
    condition = _condition(engine, alias_id)
    assert condition.title == ("Loop probe of alias 'Ana jobs': delivered to the catch-all folder but not picked up "
                               "by the poller")
    assert report_mail.report_due(engine) == 1
    text = _mail_text(reports)
    assert "PROBLEM: Loop probe of alias 'Ana jobs'" in text and "check that `serve` runs and watches" in text
    assert "Try it by hand: replybridge test loop 'Ana jobs'" in text
    assert _row(engine, alias_id).broken_leg == LEG_NOT_PICKED_UP

    with _pollers(engine):
        [good] = loop_probes.run_round(engine, wait=BACK, now=utcnow() + LATER)
    assert good.report.ok, good.report.lines()
    assert _condition(engine, alias_id).recovered_at is not None
    assert report_mail.report_due(engine) == 1
    assert "RECOVERED: Loop probe of alias 'Ana jobs'" in _mail_text(reports)


@needs_dovecot
def test_a_probe_filed_where_no_poller_looks_was_not_delivered(lite_bridge: Bridge, catchall: Dovecot,
                                                               mx: MailboxMx, monkeypatch: pytest.MonkeyPatch) -> None:
    alias_id = _through_the_catchall(lite_bridge, mx, catchall, monkeypatch)
    mx.folder = "INBOX"  # a forwarding rule changed: the catch-all no longer gets the mail
    engine = lite_bridge.engine()
    with _pollers(engine):
        [lost] = loop_probes.run_round(engine, wait=LOST)
    assert lost.report.broken_leg == LEG_LOST, lost.report.lines()
    assert "not waiting in the polled folder(s) catchall/Catchall either" in lost.report.diagnosis
    assert "the MX record of example.test" in lost.report.diagnosis
    assert _condition(engine, alias_id).title == ("Loop probe of alias 'Ana jobs': not delivered to the bridge nor to "
                                                  "its catch-all folder")
    assert len(catchall.folder_messages("INBOX")) == 1


def test_a_refusing_server_is_a_send_failure_in_one_log_line(lite_bridge: Bridge, smtp_peer,  # noqa: ANN001
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    alias_id = _through(lite_bridge, smtp_peer("relay_denied"), monkeypatch)
    engine = lite_bridge.engine()
    with caplog.at_level(logging.INFO, logger="replybridge.loop_probe"):
        loop_probes.safe_round(engine, lambda: False)
    [line] = [r.getMessage() for r in caplog.records if r.name == "replybridge.loop_probe"]
    assert line.startswith("loop probe of alias 'Ana jobs': sending failed: 550 5.7.1 Unable to relay")
    condition = _condition(engine, alias_id)
    assert condition.title == "Loop probe of alias 'Ana jobs': sending failed"
    assert "Diagnosis: 550 5.7.1 Unable to relay" in condition.detail
    row = _row(engine, alias_id)
    assert (row.ok, row.broken_leg, row.lease_owner) == (False, LEG_REFUSED, None)
    assert loop_probes.run_round(engine, wait=LOST) == []  # failed or not, the next probe waits its hours


def test_with_the_setting_off_nothing_is_probed_and_open_conditions_go(lite_bridge: Bridge, smtp_peer,  # noqa: ANN001
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    sink = smtp_peer("accept")  # mail sent there never comes back
    alias_id = _through(lite_bridge, sink, monkeypatch, hours="")
    engine = lite_bridge.engine()
    assert loop_probes.run_round(engine, wait=LOST) == []
    assert sink.received == []
    with Session(engine) as s:
        assert s.exec(select(LoopProbe)).all() == []

    lite_bridge.run("settings", "set", "loop_probe_hours", "6")
    [lost] = loop_probes.run_round(engine, wait=LOST)
    assert lost.report.broken_leg == LEG_LOST and "no IMAP server has a poll folder" in lost.report.diagnosis
    assert len(sink.received) == 1 and _condition(engine, alias_id) is not None

    lite_bridge.run("settings", "set", "loop_probe_hours", "")
    assert loop_probes.run_round(engine, wait=LOST, now=utcnow() + LATER) == []
    assert len(sink.received) == 1
    assert _condition(engine, alias_id) is None  # nothing probes it now: no report keeps reminding of it


def test_two_processes_never_probe_one_alias_at_once(bridge: Bridge, smtp_peer,  # noqa: ANN001
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sink = smtp_peer("accept")
    _through(bridge, sink, monkeypatch)
    bridge.run("alias", "add", "--employee", "1042", "--description", "Ana careers", "--display-name", "Ana Ruiz",
               "--from", "careers@example.test", "--smtp", "peer")
    engine = bridge.engine()
    rounds: list[list[loop_probes.Outcome]] = []
    assert errors_of(lambda: rounds.append(loop_probes.run_round(engine, wait=LOST)), threads=4) == []
    assert sorted(o.description for found in rounds for o in found) == ["Ana careers", "Ana jobs"]
    assert len(sink.received) == 2


def test_one_round_at_a_time_and_a_stopping_process_gives_up_at_once(lite_bridge: Bridge, smtp_peer,  # noqa: ANN001
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sink = smtp_peer("accept")
    alias_id = _through(lite_bridge, sink, monkeypatch)
    engine = lite_bridge.engine()
    stop = threading.Event()
    first = threading.Thread(target=loop_probes.safe_round, args=(engine, stop.is_set), kwargs={"wait": 600})
    first.start()
    try:
        _until(lambda: len(sink.received) == 1, "the first round's probe sent")
        lite_bridge.run("alias", "add", "--employee", "1042", "--description", "Ana careers", "--display-name",
                        "Ana Ruiz", "--from", "careers@example.test", "--smtp", "peer")
        loop_probes.safe_round(engine, lambda: False, wait=LOST)  # returns at once: the first round still waits
        assert len(sink.received) == 1
    finally:
        stop.set()
        first.join(10)
    assert not first.is_alive()
    row = _row(engine, alias_id)
    assert row.lease_owner is None and row.started_at is not None and row.finished_at is None
    assert row.message_id is not None and _condition(engine, alias_id) is None  # given up: no verdict


def test_the_scheduler_checks_every_minute_and_its_probes_stop_with_it(lite_bridge: Bridge) -> None:
    engine = lite_bridge.engine()
    jobs = schedule.scheduler(engine, 5.0)
    job = jobs.get_job("loop_probe")
    assert job.func is loop_probes.safe_round and job.args[0] is engine
    assert job.trigger.interval == dt.timedelta(minutes=1)
    stopping = job.args[1]
    jobs.start(paused=True)
    assert stopping() is False
    jobs.shutdown(wait=True)
    assert stopping() is True


@pytest.mark.parametrize("value", ["0", "-3", "six", "1.5", "721"])
def test_the_setting_is_a_whole_number_of_hours(lite_bridge: Bridge, value: str) -> None:
    refused = lite_bridge.run("settings", "set", "loop_probe_hours", value, ok=False)
    assert refused.exit_code == 1
    assert "error: loop_probe_hours is a whole number of hours from 1 to 720" in refused.stderr
    shown = lite_bridge.json("settings", "show")
    assert shown["loop_probe_hours"] == ""  # off by default, and nothing was changed
    lite_bridge.run("settings", "set", "loop_probe_hours", " 6 ")
    assert lite_bridge.json("settings", "show")["loop_probe_hours"] == "6"
