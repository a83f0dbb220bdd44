"""Error reports to the admin by mail: the decisions (pure, microseconds), then real SMTP peers as the
database-wide account and as a failing alias account, a poller that cannot connect, a grant that needs a
new sign-in, a database that cannot be opened, and `replybridge test report`. No sleeping: condition
times are backdated in the table."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import shutil
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from bridge import portal
from bridge.errors import InputError
from bridge.inbound.imap import one_pass
from bridge.ops import schedule
from bridge.ops.error_reports import records, report_mail
from bridge.ops.error_reports.rules import PROBLEM, RECOVERED, STILL, Condition, decide, digest
from models import AlertState, ImapServer, utcnow
from tests.helpers.bridge import Bridge
from tests.helpers.ports import closed_port
from tests.helpers.setup_steps import send
from tests.servers.smtp_peers import SmtpPeer

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


# --- decisions -------------------------------------------------------------------------------------------

def test_smtp_is_reported_once_failures_span_15_minutes() -> None:
    assert decide("smtp:office", T0, T0 + 14 * MIN, None, T0 + 30 * MIN, recovered=False,
                  reported_problem=False) is None  # one old failure then silence is not "failing for 15 minutes"
    assert decide("smtp:office", T0, T0 + 15 * MIN, None, T0 + 15 * MIN, recovered=False,
                  reported_problem=False) == PROBLEM


def test_poller_after_10_minutes_grant_and_database_at_once() -> None:
    assert decide("imap:box", T0, T0 + 9 * MIN, None, T0 + 9 * MIN, recovered=False, reported_problem=False) is None
    assert decide("imap:box", T0, T0 + 10 * MIN, None, T0 + 10 * MIN, recovered=False,
                  reported_problem=False) == PROBLEM
    for key in ("oauth:smtp:office", "database", "disk"):
        assert decide(key, T0, T0, None, T0, recovered=False, reported_problem=False) == PROBLEM


def test_repeats_at_most_hourly_and_recovery_once() -> None:
    reported = T0 + 15 * MIN
    assert decide("smtp:office", T0, T0 + 70 * MIN, reported, reported + 59 * MIN, recovered=False,
                  reported_problem=True) is None
    assert decide("smtp:office", T0, T0 + 80 * MIN, reported, reported + 60 * MIN, recovered=False,
                  reported_problem=True) == STILL
    assert decide("smtp:office", T0, T0, reported, T0, recovered=True, reported_problem=True) == RECOVERED
    assert decide("smtp:office", T0, T0, reported, T0, recovered=True, reported_problem=True,
                  recovery_reported=True) is None
    assert decide("smtp:office", T0, T0, None, T0, recovered=True, reported_problem=False) is None  # never reported


def test_digest_lists_every_open_reported_condition_when_a_mail_goes() -> None:
    old = Condition("imap:box", "box", "d", T0, T0 + 30 * MIN, T0 + 10 * MIN, reported_problem=True)
    new = Condition("oauth:smtp:office", "grant", "d", T0 + 40 * MIN, T0 + 40 * MIN)
    over = Condition("smtp:office", "office", "d", T0, T0, T0, reported_problem=True, recovered_at=T0 + 40 * MIN)
    now = T0 + 40 * MIN
    assert digest([old], now) == []  # reported 30 minutes ago: nothing due alone
    assert digest([old, new, over], now) == [(PROBLEM, new), (STILL, old), (RECOVERED, over)]


def test_settings_are_checked() -> None:
    assert portal.KEYS["report_errors"][1]("Yes") == "on"
    assert portal.KEYS["report_errors"][0] == "off"
    for key, value in (("report_errors", "maybe"), ("report_to", "not an address"),
                       ("report_subject", "broken {placeholder}"), ("report_subject", "a\nBcc: x@example.org"),
                       ("report_to_name", "Ada\r\nBcc: x@example.org")):
        with pytest.raises(InputError):
            portal.KEYS[key][1](value)


# --- with real servers ----------------------------------------------------------------------------------

def wide_account(b: Bridge, peer: SmtpPeer, *, reporting: bool = True) -> None:
    """The accepting peer as the database-wide account, reports to the admin."""
    b.run("smtp", "add", "wide", "--host", peer.host, "--port", str(peer.port), "--security", "none",
          "--timeout", "5", "--default")
    b.run("settings", "set", "report_to", "admin@example.test")
    b.run("settings", "set", "report_to_name", "Ada Admin")
    b.run("settings", "set", "report_from", "bridge@example.test")
    if reporting:
        b.run("settings", "set", "report_errors", "on")


def reports(peer: SmtpPeer) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(r.data, policy=email.policy.default) for r in peer.received]


def backdate(b: Bridge, key: str, **minutes: int) -> None:
    """Move a condition's times into the past, as if that much time had gone by."""
    with Session(b.engine()) as s:
        row = s.exec(select(AlertState).where(AlertState.key == key)).one()
        values = {column: getattr(row, column) - dt.timedelta(minutes=m) for column, m in minutes.items()}
        s.exec(update(AlertState).where(AlertState.key == key).values(**values))
        s.commit()


def test_smtp_failing_15_minutes_one_report_hourly_digest_one_recovery(bridge: Bridge, smtp_peer) -> None:
    admin = smtp_peer("accept")
    failing = smtp_peer("reject_550_user", fail_times=3)  # the fourth message goes through
    wide_account(bridge, admin)
    bridge.run("smtp", "add", "office", "--host", failing.host, "--port", str(failing.port), "--security", "none",
               "--timeout", "5")
    bridge.run("alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana Ruiz",
               "--from", "ana@example.test", "--smtp", "office")

    send(bridge, to="first@example.org")
    bridge.run("worker", "--once")
    assert admin.received == []  # failing for less than 15 minutes: not yet critical
    backdate(bridge, "smtp:office", first_seen=16)
    send(bridge, to="second@example.org")
    bridge.run("worker", "--once")
    [problem] = reports(admin)
    assert problem["Subject"] == "replybridge: SMTP account 'office' fails every send"
    assert problem["To"] == "Ada Admin <admin@example.test>" and problem["Auto-Submitted"] == "auto-generated"
    assert admin.received[0].rcpt_tos == ["admin@example.test"]
    text = problem.get_content()
    assert "PROBLEM: SMTP account 'office'" in text and "550 5.1.1 User unknown" in text and "Hint:" in text

    send(bridge, to="third@example.org")
    bridge.run("worker", "--once")
    bridge.run("worker", "--once")
    assert len(admin.received) == 1  # still failing, but reported less than an hour ago

    backdate(bridge, "smtp:office", last_reported_at=61)
    bridge.run("worker", "--once")
    bridge.run("worker", "--once")
    assert len(admin.received) == 2
    assert "STILL OPEN: SMTP account 'office'" in reports(admin)[1].get_content()

    send(bridge, to="fourth@example.org")
    bridge.run("worker", "--once")
    bridge.run("worker", "--once")
    assert [m["status"] for m in bridge.json("log")].count("sent") == 1
    assert len(admin.received) == 3
    recovery = reports(admin)[2]
    assert recovery["Subject"] == "replybridge: recovered: SMTP account 'office' fails every send"
    assert "RECOVERED" in recovery.get_content()


def test_reporting_off_records_but_mails_nothing(lite_bridge: Bridge, smtp_peer) -> None:
    admin = smtp_peer("accept")
    wide_account(lite_bridge, admin, reporting=False)
    records.problem(lite_bridge.engine(), "database", "The database failed", "x")
    records.needs_sign_in(lite_bridge.engine(), "smtp", "office", "sign in")
    lite_bridge.run("worker", "--once")
    assert admin.received == []


def test_poller_that_cannot_connect_for_10_minutes_is_reported(lite_bridge: Bridge, smtp_peer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    admin = smtp_peer("accept")
    wide_account(lite_bridge, admin)
    monkeypatch.setenv("RB_IMAP_PW", "Imap-Secret-42")
    lite_bridge.run("imap", "add", "box", "--host", "127.0.0.1", "--port", str(closed_port()), "--security", "none",
                    "--username", "catchall", "--password-env", "RB_IMAP_PW", "--timeout", "2",
                    "--poll-folder", "INBOX")
    eng = lite_bridge.engine()
    with Session(eng) as s:
        server_id = s.exec(select(ImapServer.id).where(ImapServer.name == "box")).one()
    assert one_pass.poll_once(eng, server_id, "test").error
    lite_bridge.run("worker", "--once")
    assert admin.received == []
    backdate(lite_bridge, "imap:box", first_seen=11)
    assert one_pass.poll_once(eng, server_id, "test").error
    lite_bridge.run("worker", "--once")
    [report] = reports(admin)
    assert report["Subject"] == "replybridge: IMAP server 'box': the poller cannot connect"
    assert "refused" in report.get_content().lower() and "Imap-Secret-42" not in report.get_content()


def test_grant_needing_sign_in_is_reported_at_once_with_the_fix(lite_bridge: Bridge, smtp_peer) -> None:
    admin, office = smtp_peer("accept"), smtp_peer("accept")
    wide_account(lite_bridge, admin)
    lite_bridge.run("oauth", "add", "entra", "--provider", "generic", "--client-id", "rb",
                    "--authorize-url", "https://login.example.test/authorize",
                    "--token-url", "https://login.example.test/token")
    lite_bridge.run("smtp", "add", "office", "--host", office.host, "--port", str(office.port), "--security", "none",
                    "--username", "jobs@example.test", "--oauth", "entra")
    lite_bridge.run("alias", "add", "--employee", "1042", "--description", "Ana jobs", "--display-name", "Ana Ruiz",
                    "--from", "ana@example.test", "--smtp", "office")
    send(lite_bridge)
    lite_bridge.run("worker", "--once")
    assert office.received == []
    [report] = reports(admin)
    assert report["Subject"] == "replybridge: SMTP account 'office' must be signed in again"
    assert "replybridge oauth login smtp office --device" in report.get_content()
    lite_bridge.run("worker", "--once")
    assert len(admin.received) == 1


def test_database_failure_is_mailed_from_memory_and_its_recovery_once(lite_bridge: Bridge, smtp_peer,
                                                                       tmp_path: Path) -> None:
    admin = smtp_peer("accept")
    wide_account(lite_bridge, admin)
    eng = lite_bridge.engine()
    schedule.safe_run(eng)  # a good run: remembers the settings and the account
    assert admin.received == []
    eng.dispose()
    db = tmp_path / "rb.db"
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in tmp_path.glob("rb.db*"):
        shutil.move(path, moved / path.name)
    db.mkdir()  # the database file cannot be opened now
    schedule.safe_run(eng)
    schedule.safe_run(eng)
    [report] = reports(admin)
    assert report["Subject"] == "replybridge: The database failed"
    assert "OperationalError" in report.get_content() and "SELECT" not in report.get_content()
    db.rmdir()
    for path in moved.iterdir():
        shutil.move(path, tmp_path / path.name)
    schedule.safe_run(eng)
    schedule.safe_run(eng)
    assert len(admin.received) == 2
    assert reports(admin)[1]["Subject"] == "replybridge: recovered: The database failed"


def test_test_report_sends_a_sample(lite_bridge: Bridge, smtp_peer) -> None:
    failed = lite_bridge.run("test", "report", ok=False)
    assert failed.exit_code == 1 and "Status: FAILED" in failed.output and "report_to" in failed.output
    admin = smtp_peer("accept")
    lite_bridge.run("settings", "set", "report_to", "admin@example.test")
    failed = lite_bridge.run("test", "report", ok=False)
    assert failed.exit_code == 1 and "no database-wide SMTP account" in failed.output
    wide_account(lite_bridge, admin, reporting=False)
    out = lite_bridge.run("test", "report").output
    assert "Status: OK" in out and "reporting is off" in out
    [sample] = reports(admin)
    assert sample["Subject"] == "replybridge: Sample report (replybridge test report)"
    assert sample["From"] == "replybridge <bridge@example.test>" and sample["Auto-Submitted"] == "auto-generated"


def test_test_report_explains_a_refusing_server(lite_bridge: Bridge, smtp_peer) -> None:
    wide_account(lite_bridge, smtp_peer("relay_denied"))
    failed = lite_bridge.run("test", "report", ok=False)
    assert failed.exit_code == 1 and "550 5.7.1 Unable to relay" in failed.output and "Hint:" in failed.output


def test_no_report_before_now(lite_bridge: Bridge, smtp_peer) -> None:
    """A condition recorded now and not yet due stays quiet; report_due takes an injected clock."""
    admin = smtp_peer("accept")
    wide_account(lite_bridge, admin)
    eng = lite_bridge.engine()
    records.smtp_failed(eng, "office", "451 4.3.0 Temporary server error")
    assert report_mail.report_due(eng, utcnow() + 20 * MIN) == 0  # failures seen at one moment only
    records.smtp_failed(eng, "office", "451 4.3.0 Temporary server error", now=utcnow() + 16 * MIN)
    assert report_mail.report_due(eng, utcnow() + 16 * MIN) == 1
    assert report_mail.report_due(eng, utcnow() + 30 * MIN) == 0
    assert report_mail.report_due(eng, utcnow() + 80 * MIN) == 1
    assert len(admin.received) == 2


def test_reports_go_out_under_the_database_wide_accounts_own_name_and_address(lite_bridge: Bridge,
                                                                              smtp_peer) -> None:
    admin = smtp_peer("accept")
    lite_bridge.run("smtp", "add", "wide", "--host", admin.host, "--port", str(admin.port), "--security", "none",
                    "--default", "--from-name", "Acme Recruiting", "--from-address", "careers@example.test")
    lite_bridge.run("settings", "set", "report_to", "admin@example.test")
    assert "Status: OK" in lite_bridge.run("test", "report").output
    [sample] = reports(admin)
    assert sample["From"] == "Acme Recruiting <careers@example.test>"
    assert admin.received[0].mail_from == "careers@example.test"
    lite_bridge.run("smtp", "set", "wide", "--from-name", "", "--from-address", "")  # unset: the defaults again
    [shown] = lite_bridge.json("smtp", "list")
    assert (shown["from_name"], shown["from_address"]) == (None, None)
    failed = lite_bridge.run("test", "report", ok=False)  # no username either: says how to give it an address
    assert "smtp set wide --from-address" in failed.output
    bad = lite_bridge.run("smtp", "set", "wide", "--from-address", "not an address", ok=False)
    assert bad.exit_code == 1 and lite_bridge.json("smtp", "list") == [shown]
