"""Retention on SQLite and PostgreSQL: the dry run counts and changes nothing, a run removes exactly what
is past its time and never work in progress, and the tallies it leaves add up, also across runs and with
two runs at once."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from sqlalchemy import func, text, update
from sqlmodel import Session, select

from bridge.privacy import retention
from models import AuditEvent, DeliveryAttempt, InboundMessage, OutboundMessage, RetentionTally, WebhookDelivery
from tests.helpers import aged_rows as aged
from tests.helpers.at_once import errors_of
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import ingest_json
from tests.helpers.messages import reply
from tests.helpers.setup_steps import add_account

SETTINGS = {"keep_inbound_days": "30", "keep_mail_log_days": "60", "keep_dismissed_days": "10",
            "keep_audit_days": "90"}
TABLES = (InboundMessage, OutboundMessage, DeliveryAttempt, WebhookDelivery, AuditEvent)


def _configure(b: Bridge, **only: str) -> None:
    for key, value in (only or SETTINGS).items():
        b.run("settings", "set", key, value)


def _seed(b: Bridge) -> dict[type, dict[str, int]]:
    """Old and new records of every kind, per table; the names say which ones a run removes (`gone_`)."""
    e = b.engine()
    inbound = {
        "gone_employee": aged.inbound(e, 40),
        "gone_unassigned": aged.inbound(e, 45, route="unassigned", delivery="none", triage="open"),
        "kept_unrouted": aged.inbound(e, 50, route=None, delivery="none"),
        "kept_forward_queued": aged.inbound(e, 50, delivery="queued"),
        "kept_imap_pending": aged.inbound(e, 50, delivery="pending"),
        "kept_new": aged.inbound(e, 5),
        # dismissed ones count from their dismissal (from arrival where it is unknown)
        "gone_dismissed": aged.inbound(e, 20, route="unassigned", delivery="none", triage="dismissed",
                                       triaged_days=15),
        "gone_dismissed_no_time": aged.inbound(e, 12, route="unassigned", delivery="none", triage="dismissed"),
        "gone_dismissed_past_both": aged.inbound(e, 50, route="unassigned", delivery="none", triage="dismissed",
                                                 triaged_days=20),
        "kept_dismissed_lately": aged.inbound(e, 25, route="unassigned", delivery="none", triage="dismissed",
                                              triaged_days=3),
        "gone_old_dismissed_lately": aged.inbound(e, 40, route="unassigned", delivery="none", triage="dismissed",
                                                  triaged_days=2),
    }
    outbound = {
        "gone_sent": aged.outbound(e, 70, attempts=2),
        "gone_undeliverable": aged.outbound(e, 80, status="undeliverable", sent_folder="none"),
        "gone_not_sent": aged.outbound(e, 65, status="not_sent", sent_folder="none", attempts=0),
        "kept_queued": aged.outbound(e, 90, status="queued", sent_folder="none", attempts=0),
        "kept_deferred": aged.outbound(e, 90, status="deferred", sent_folder="none"),
        "kept_sending": aged.outbound(e, 90, status="sending", sent_folder="none"),
        "kept_sent_copy_pending": aged.outbound(e, 70, sent_folder="pending"),
        "kept_new": aged.outbound(e, 10),
    }
    webhook = {
        "gone_delivered": aged.webhook_event(e, 40),
        "gone_pending": aged.webhook_event(e, 35, status="pending"),
        "gone_failed": aged.webhook_event(e, 45, status="failed"),
        "kept_in_flight": aged.webhook_event(e, 40, status="pending", claimed_until=aged.ago(-1 / 288)),
        "kept_new": aged.webhook_event(e, 3),
    }
    inbound["kept_bounce"] = aged.inbound(e, 3, route="bounce", delivery="none",
                                          outbound_id=outbound["gone_undeliverable"])
    # a forward's hand-off is its Mail Log entry: in progress while that is still to go out
    outbound["kept_forward_unsent"] = aged.outbound(e, 50, status="deferred", sent_folder="none", purpose="forward",
                                                    inbound_id=inbound["kept_forward_queued"])
    inbound["gone_forward_done"] = aged.inbound(e, 40, delivery="queued")
    outbound["kept_forward_of_gone"] = aged.outbound(e, 10, inbound_id=inbound["gone_forward_done"], purpose="forward")
    outbound["kept_letter_to_gone"] = aged.outbound(e, 10, inbound_id=inbound["gone_employee"],
                                                    purpose="acknowledgement")
    aged.audit_entries(e, 100, 3, "assign")
    aged.audit_entries(e, 95, 1, "view_raw")
    aged.audit_entries(e, 80, 2, "dismiss")
    return {InboundMessage: inbound, OutboundMessage: outbound, WebhookDelivery: webhook}


EXPECTED = {"dismissed": 3, "inbound": 4, "outbound": 3, "webhook": 3, "audit": 4}


def _rows(b: Bridge) -> dict[str, int]:
    with Session(b.engine()) as s:
        return {t.__tablename__: s.exec(select(func.count()).select_from(t)).one() for t in TABLES}


def _ids(b: Bridge, table: type) -> set[int]:
    with Session(b.engine()) as s:
        return set(s.exec(select(table.id)))


def _tally(b: Bridge) -> dict[tuple[str, str, str], int]:
    with Session(b.engine()) as s:
        return {(r.day.isoformat(), r.kind, r.outcome): r.count for r in s.exec(select(RetentionTally))}


def _retention_audits(b: Bridge) -> list[AuditEvent]:
    with Session(b.engine()) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == "retention")))


def test_dry_run_counts_and_changes_nothing(bridge: Bridge) -> None:
    _configure(bridge)
    _seed(bridge)
    before = _rows(bridge)
    report = bridge.json("retention", "run", "--dry-run")
    assert report["dry_run"] is True and report["configured"] is True
    assert {k["kind"]: k["removed"] for k in report["kinds"]} == EXPECTED
    by_kind = {k["kind"]: k for k in report["kinds"]}
    assert by_kind["outbound"]["by_outcome"] == {"not_sent": 1, "sent": 1, "undeliverable": 1}
    assert by_kind["webhook"]["by_outcome"] == {"delivered": 1, "failed": 1, "pending": 1}
    assert by_kind["audit"]["by_outcome"] == {"assign": 3, "view_raw": 1}
    assert by_kind["inbound"]["days"] == 30 and by_kind["inbound"]["cutoff"][:10] == aged.ago(30).date().isoformat()

    out = bridge.run("retention", "run", "--dry-run").stdout
    assert "dismissed: 3 would be removed" in out and "audit: 4 would be removed" in out
    assert f"made before {aged.ago(60):%Y-%m-%d}" in out
    assert _rows(bridge) == before and _tally(bridge) == {} and _retention_audits(bridge) == []


def test_run_removes_exactly_what_is_past_its_time(bridge: Bridge) -> None:
    _configure(bridge)
    ids = _seed(bridge)
    out = bridge.run("retention", "run").stdout
    for kind, n in EXPECTED.items():
        assert f"{kind}: {n} removed" in out

    for table, named in ids.items():
        present = _ids(bridge, table)
        assert {name for name, row_id in named.items() if row_id not in present} == \
            {name for name in named if name.startswith("gone_")}, table
    with Session(bridge.engine()) as s:
        assert s.get(InboundMessage, ids[InboundMessage]["kept_bounce"]).outbound_id is None  # its original is gone
        assert s.get(OutboundMessage, ids[OutboundMessage]["kept_forward_of_gone"]).inbound_id is None
        assert s.get(OutboundMessage, ids[OutboundMessage]["kept_letter_to_gone"]).inbound_id is None
        assert s.get(OutboundMessage, ids[OutboundMessage]["kept_forward_unsent"]).inbound_id is not None
        attempts = set(s.exec(select(DeliveryAttempt.outbound_id)))
        assert ids[OutboundMessage]["gone_sent"] not in attempts and ids[OutboundMessage]["kept_deferred"] in attempts
        actions = Counter(s.exec(select(AuditEvent.action)))
    assert actions["assign"] == 0 and actions["view_raw"] == 0 and actions["dismiss"] == 2

    day = lambda n: aged.ago(n).date().isoformat()  # noqa: E731 - a short local name
    assert _tally(bridge) == {
        (day(40), "inbound", "employee"): 2, (day(45), "inbound", "unassigned"): 1,
        (day(40), "inbound", "unassigned"): 1,
        (day(20), "dismissed", "unassigned"): 1, (day(12), "dismissed", "unassigned"): 1,
        (day(50), "dismissed", "unassigned"): 1,
        (day(70), "outbound", "sent"): 1, (day(80), "outbound", "undeliverable"): 1,
        (day(65), "outbound", "not_sent"): 1,
        (day(40), "webhook", "delivered"): 1, (day(35), "webhook", "pending"): 1, (day(45), "webhook", "failed"): 1,
        (day(100), "audit", "assign"): 3, (day(95), "audit", "view_raw"): 1,
    }
    [entry] = _retention_audits(bridge)
    assert entry.detail == "dismissed 3, inbound 4, outbound 3, webhook 3, audit 4"
    assert entry.actor.startswith("command")

    history = bridge.json("retention", "history")
    assert sum(r["count"] for r in history) == sum(EXPECTED.values())
    assert "outbound" in bridge.run("retention", "history", "--kind", "outbound").stdout

    again = bridge.run("retention", "run").stdout
    assert "Nothing to remove." in again and _tally(bridge)[(day(100), "audit", "assign")] == 3


def test_a_second_run_adds_to_the_same_day(bridge: Bridge) -> None:
    _configure(bridge, keep_mail_log_days="60", keep_audit_days="90")
    e = bridge.engine()
    aged.outbound(e, 70)
    aged.audit_entries(e, 100, 2)
    bridge.run("retention", "run")
    aged.outbound(e, 70)
    aged.outbound(e, 70)
    aged.audit_entries(e, 100, 5)
    report = bridge.json("retention", "run")
    assert {k["kind"]: k["removed"] for k in report["kinds"]} == {"outbound": 2, "audit": 5}
    day = aged.ago(70).date().isoformat()
    assert _tally(bridge)[(day, "outbound", "sent")] == 3
    assert _tally(bridge)[(aged.ago(100).date().isoformat(), "audit", "assign")] == 7
    assert len(_retention_audits(bridge)) == 2


def test_a_message_received_and_routed_for_real_goes_too(bridge: Bridge, smtp_peer, monkeypatch) -> None:  # noqa: ANN001
    """Through ingest and routing (every column a real message fills), then aged: kept while its forward is
    still to go out, removed once it went; the forward's Mail Log entry stops naming it."""
    peer = smtp_peer("accept")
    add_account(bridge, peer.host, peer.port, monkeypatch, default=True)
    _configure(bridge, keep_inbound_days="30")
    ingest_json(bridge, reply("aged@cand.example", "Cara <cara@cand.example>", "jobs+1042@example.test"))
    with Session(bridge.engine()) as s:
        s.exec(update(InboundMessage).values(received_at=aged.ago(31)))
        s.commit()
    [forward] = bridge.json("log")
    assert forward["purpose"] == "forward" and forward["status"] == "queued"
    assert bridge.json("retention", "run", "--dry-run")["removed"] == 0  # its hand-off is in progress
    bridge.run("worker", "--once")
    assert bridge.json("log")[0]["status"] == "sent" and len(peer.received) == 1
    assert bridge.json("retention", "run", "--dry-run")["removed"] == 1
    assert bridge.json("retention", "run")["kinds"][0]["by_outcome"] == {"employee": 1}
    assert _ids(bridge, InboundMessage) == set() and bridge.json("messages", "list") == []
    with Session(bridge.engine()) as s:
        assert s.get(OutboundMessage, forward["id"]).inbound_id is None


def test_two_runs_at_once_count_each_record_once(bridge: Bridge) -> None:
    _configure(bridge, keep_inbound_days="30", keep_audit_days="90")
    e = bridge.engine()
    for _ in range(120):
        aged.inbound(e, 40)
    aged.audit_entries(e, 100, 400)
    reports: list[retention.Report] = []
    errors = errors_of(lambda: reports.append(retention.run(e, batch=20)), 2)
    assert errors == [] and len(reports) == 2
    removed = Counter()
    for r in reports:
        for k in r.results:
            removed[k.kind] += k.removed
    assert removed == {"inbound": 120, "webhook": 0, "audit": 400}
    tally = _tally(bridge)
    assert sum(n for (_d, kind, _o), n in tally.items() if kind == "inbound") == 120
    assert sum(n for (_d, kind, _o), n in tally.items() if kind == "audit") == 400
    assert _rows(bridge)["inbound_message"] == 0


def test_a_backlog_shows_progress_on_stderr(bridge: Bridge) -> None:
    _configure(bridge, keep_audit_days="90")
    aged.audit_entries(bridge.engine(), 100, retention.BATCH * 2 + 7)
    result = bridge.run("retention", "run")
    assert f"audit: {retention.BATCH} removed so far" in result.stderr
    assert f"audit: {retention.BATCH * 2 + 7} removed" in result.stdout
    assert "removed so far" not in result.stdout


def test_nothing_configured_removes_nothing(bridge: Bridge) -> None:
    _seed(bridge)
    before = _rows(bridge)
    result = bridge.run("retention", "run")
    assert "No retention setting is set" in result.stdout
    assert bridge.json("retention", "run")["configured"] is False
    assert _rows(bridge) == before and _tally(bridge) == {} and _retention_audits(bridge) == []


@pytest.mark.parametrize("value", ["-3", "0", "abc", "1.5", "36501"])
def test_bad_retention_values_are_refused(bridge: Bridge, value: str) -> None:
    bridge.run("settings", "set", "keep_inbound_days", "45")
    result = bridge.run("settings", "set", "keep_inbound_days", value, ok=False)
    assert result.exit_code == 1 and "error: keep_inbound_days is a number of days" in result.stderr
    with Session(bridge.engine()) as s:
        stored = s.exec(text("SELECT value FROM setting WHERE key = 'keep_inbound_days'")).one()[0]
    assert stored == "45"
    assert json.loads(bridge.run("settings", "show", "--json").stdout)["keep_inbound_days"] == "45"
