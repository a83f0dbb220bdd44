"""/metrics from a real `serve`: what the receiver and the routing process count shows on the page the services
process serves, and stays through a child's restart; the gauges read from the database; the IMAP gauges
against Dovecot; who may read the page; and one message's life as JSON step lines."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import smtplib
import subprocess
from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, select

from bridge.web.metrics_page import Scrape, allowed, database_gauges
from models import ImapFolderState, ImapServer
from models.db import make_engine
from tests.helpers import aged_rows
from tests.helpers.bridge import Bridge
from tests.helpers.inbound import deliver, routed
from tests.helpers.messages import KNOWN, UNKNOWN, candidate, reply
from tests.helpers.ports import free_port
from tests.helpers.setup_steps import add_poller
from tests.servers.dovecot import Dovecot
from tests.servers.smtp_peers import SmtpPeer
from tests.servers.web import Served, start_serve, stop_serve

RECEIVED = "replybridge_messages_received_total"
ROUTED = "replybridge_messages_routed_total"
ERROR_REPLIES = "replybridge_smtp_receiver_error_replies_total"


def samples(text: str) -> dict[str, float]:
    """Every sample as Prometheus writes it, `name{label="value",...}` (labels sorted), and its value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def scrape(served: Served, **headers: str) -> dict[str, float]:
    answer = httpx.get(f"{served.base_url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return samples(answer.text)


def until(served: Served, expected: dict[str, float], timeout: float = 20) -> dict[str, float]:
    """The page once every expected sample has its value (routing and the worker run on their own clock)."""
    seen: dict[str, float] = {}

    def met() -> bool:
        nonlocal seen
        seen = scrape(served)
        return all(seen.get(name) == value for name, value in expected.items())
    try:
        served.wait_for(met, timeout=timeout, what="the metrics")
    except AssertionError:
        wrong = {name: seen.get(name) for name, value in expected.items() if seen.get(name) != value}
        raise AssertionError(f"expected {expected}, but {wrong}") from None
    return seen


def send_over_smtp(served: Served, sender: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", served.smtp_port, timeout=10) as smtp:
        smtp.sendmail(sender, [to], raw)


def test_counts_from_every_process_show_on_the_services_page(bridge: Bridge, tmp_path: Path, smtp_peer,  # noqa: ANN001
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    peer: SmtpPeer = smtp_peer("accept")
    bridge.run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none",
               "--default")
    monkeypatch.setenv("REPLYBRIDGE_INGEST_SOCKET", str(tmp_path / "ingest.sock"))  # serve's, and `ingest`'s here
    served = start_serve(bridge, tmp_path, {"REPLYBRIDGE_SMTP_MAX_BYTES": "20000"})
    try:
        # the receiver (serve's own process) stores, the routing process routes, the services process forwards
        send_over_smtp(served, "c1@cand.example", KNOWN, candidate(1))
        send_over_smtp(served, "c1@cand.example", KNOWN, candidate(1))  # the same message again
        send_over_smtp(served, "c2@cand.example", UNKNOWN, candidate(2, to=UNKNOWN))  # no employee 9999
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send_over_smtp(served, "c3@cand.example", "someone@elsewhere.example", candidate(3))
        with smtplib.SMTP("127.0.0.1", served.smtp_port, timeout=10) as smtp:  # DATA past the size limit
            smtp.ehlo()
            smtp.mail("c4@cand.example")
            smtp.rcpt(KNOWN)
            code, _text = smtp.data(candidate(4, body=("x" * 70 + "\r\n") * 400))
            assert code == 552
        assert "the running service routes it" in bridge.run("ingest", "-", stdin=candidate(5).decode()).stdout
        until(served, {
            f'{RECEIVED}{{result="stored",source="smtp"}}': 2, f'{RECEIVED}{{result="duplicate",source="smtp"}}': 1,
            f'{RECEIVED}{{result="refused",source="smtp"}}': 1, f'{RECEIVED}{{result="stored",source="pipe"}}': 1,
            f'{ERROR_REPLIES}{{class="5xx",code="550"}}': 1, f'{ERROR_REPLIES}{{class="5xx",code="552"}}': 1,
            f'{ROUTED}{{route="employee",rule="numbered"}}': 2, f'{ROUTED}{{route="unassigned",rule="numbered"}}': 1,
            "replybridge_unassigned_open_messages": 1,
            # the two replies to 1042 were forwarded to her through the peer
            'replybridge_outbound_messages{status="sent"}': 2,
            'replybridge_send_duration_seconds_count{outcome="sent"}': 2})

        bridge.run("send", "--employee", "1042", "--to", "dana@cand.example", "--subject", "Hi", "--body", "Hello")
        seen = until(served, {'replybridge_outbound_messages{status="sent"}': 3,
                              'replybridge_outbound_messages{status="queued"}': 0,
                              'replybridge_send_duration_seconds_count{outcome="sent"}': 3,
                              "replybridge_outbound_oldest_queued_age_seconds": 0})
        assert 0 < seen['replybridge_send_duration_seconds_sum{outcome="sent"}'] < 10
        assert len(peer.received) == 3
        assert seen["replybridge_webhook_pending_deliveries"] == 0 and seen["replybridge_database_up"] == 1
        assert seen[f'{RECEIVED}{{result="stored",source="smtp"}}'] == 2  # counted once, though scraped often
    finally:
        stop_serve(served)


def _child_pid(served: Served, words: str) -> int:
    lines = served.wait_for(lambda: [line for line in served.output().splitlines() if words in line], what=words)
    return int(re.search(r"process (\d+)", lines[-1]).group(1))


def test_a_restarted_child_adds_to_its_counts(lite_bridge: Bridge, tmp_path: Path) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()
    killed_serves = tmp_path / f"replybridge-metrics-{ended.pid}-x1"  # left by a serve that was killed
    other_serves = tmp_path / f"replybridge-metrics-{os.getpid()}-x2"  # a live serve's
    killed_serves.mkdir()
    other_serves.mkdir()
    served = start_serve(lite_bridge, tmp_path, {"RUNTIME_DIRECTORY": str(tmp_path)})  # as systemd sets it
    try:
        shared = _shared_dir(_child_pid(served, "web pages and"))
        assert shared.parent == tmp_path and shared.stat().st_mode & 0o077 == 0  # the counts' own, private
        assert not killed_serves.exists() and other_serves.exists()
        send_over_smtp(served, "c1@cand.example", KNOWN, candidate(1))
        until(served, {f'{ROUTED}{{route="employee",rule="numbered"}}': 1})
        os.kill(_child_pid(served, "routing in process"), signal.SIGKILL)
        served.wait_for(lambda: served.output().count("routing in process") == 2, what="a new routing process")
        send_over_smtp(served, "c2@cand.example", KNOWN, candidate(2))
        until(served, {f'{ROUTED}{{route="employee",rule="numbered"}}': 2,  # the dead process's one kept, not doubled
                       f'{RECEIVED}{{result="stored",source="smtp"}}': 2})
    finally:
        stop_serve(served)
    assert not shared.exists()  # gone with serve


def _shared_dir(pid: int) -> Path:
    """The counts' directory a child of serve was started with."""
    environment = dict(entry.split("=", 1) for entry in
                       Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry)
    return Path(environment["PROMETHEUS_MULTIPROC_DIR"])


def test_the_imap_gauges_follow_a_watched_folder(lite_bridge: Bridge, tmp_path: Path, dovecot: Dovecot,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    add_poller(lite_bridge, dovecot, monkeypatch)
    served = start_serve(lite_bridge, tmp_path)
    try:
        until(served, {'replybridge_imap_idle{folder="INBOX",server="catchall"}': 1})
        deliver(dovecot, [candidate(1)])
        until(served, {f'{RECEIVED}{{result="stored",source="imap"}}': 1,
                       'replybridge_imap_folder_waiting_messages{folder="INBOX",server="catchall"}': 0,
                       'replybridge_imap_idle{folder="INBOX",server="catchall"}': 1})
        dovecot.stop()  # the watcher loses its server: polling, failing, not idling
        until(served, {'replybridge_imap_idle{folder="INBOX",server="catchall"}': 0})
    finally:
        stop_serve(served)


def test_the_database_gauges_count_what_is_stored(bridge: Bridge) -> None:
    engine = bridge.engine()
    for status in ("sent", "sent", "queued", "deferred", "undeliverable", "not_sent"):
        aged_rows.outbound(engine, 0.5, status=status)  # due 12 hours ago
    for triage in ("open", "open", "dismissed"):
        aged_rows.inbound(engine, 1, route="unassigned", triage=triage)
    bridge.run("imap", "add", "catchall", "--host", "imap.example.test", "--port", "143", "--security", "none",
               "--username", "jobs", "--password-stdin", "--poll-folder", "Careers", stdin="pw\n")
    with Session(engine) as session:
        server_id = session.exec(select(ImapServer.id)).one()
        session.add(ImapFolderState(imap_server_id=server_id, folder="Careers", waiting=3))
        session.add(ImapFolderState(imap_server_id=server_id, folder="INBOX", waiting=9))  # polled once, no longer
        session.commit()
    with engine.connect() as conn:
        seen = samples_of(database_gauges(conn))
    assert seen["replybridge_unassigned_open_messages"] == 2
    assert {status: seen[f'replybridge_outbound_messages{{status="{status}"}}'] for status in
            ("queued", "sending", "sent", "deferred", "undeliverable", "not_sent")} == {
        "queued": 1, "sending": 0, "sent": 2, "deferred": 1, "undeliverable": 1, "not_sent": 1}
    due_since = (dt.datetime.now(dt.UTC) - aged_rows.ago(0.5)).total_seconds()  # the queued one, 12 hours ago
    assert abs(seen["replybridge_outbound_oldest_queued_age_seconds"] - due_since) < 60
    assert seen['replybridge_imap_folder_waiting_messages{folder="Careers",server="catchall"}'] == 3
    assert not any('folder="INBOX"' in name for name in seen)


def test_without_the_database_the_page_still_answers() -> None:
    engine = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2")
    seen = samples_of(Scrape(engine).collect())
    assert seen == {"replybridge_database_up": 0}  # and no counts: this process is not a serve's
    engine.dispose()


def samples_of(families: object) -> dict[str, float]:
    found = {}
    for family in families:
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def test_only_allowed_addresses_or_the_token_read_the_page(lite_bridge: Bridge, tmp_path: Path) -> None:
    settings = tmp_path / "replybridge.toml"
    settings.write_text("")
    served = start_serve(lite_bridge, tmp_path, {"REPLYBRIDGE_CONFIG": str(settings)})
    try:
        assert "replybridge_unassigned_open_messages" in scrape(served)  # loopback, by default
        settings.write_text('metrics_allow = "10.0.0.0/8"\nmetrics_token = "a-long-scrape-token"\n')
        refused = httpx.get(f"{served.base_url}/metrics", timeout=10)
        assert refused.status_code == 403 and "metrics_allow" in refused.text
        wrong = httpx.get(f"{served.base_url}/metrics", headers={"Authorization": "Bearer not-it"}, timeout=10)
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        assert "replybridge_" not in refused.text + wrong.text
        assert "replybridge_unassigned_open_messages" in scrape(served, Authorization="Bearer a-long-scrape-token")
    finally:
        stop_serve(served)


def test_allowed_reads_ipv4_inside_ipv6() -> None:
    assert allowed("::ffff:127.0.0.1", (ip_network("127.0.0.0/8"),))
    assert allowed("10.1.2.3", (ip_network("10.0.0.0/8"),)) and not allowed("11.1.2.3", (ip_network("10.0.0.0/8"),))
    assert not allowed("testclient", (ip_network("0.0.0.0/0"),))


def test_one_message_reads_as_json_step_lines_without_its_sender_or_body(lite_bridge: Bridge, tmp_path: Path) -> None:
    served = start_serve(lite_bridge, tmp_path, {"REPLYBRIDGE_LOG_FORMAT": "json"})
    try:
        body = "Tuesday at ten suits me; my number is 0612345678.\r\n"
        raw = reply("life-1@cand.example", "Dana Secret <dana.secret@cand.example>", KNOWN, body=body).encode()
        send_over_smtp(served, "dana.secret@cand.example", KNOWN, raw)
        [message] = routed(lite_bridge, 1, timeout=20)
        lines = served.wait_for(lambda: _steps(served, message["id"], {"stored", "routed", "handed_off", "queued"}),
                                what="the message's step lines")
    finally:
        stop_serve(served)
    stored, routed_line = lines["stored"], lines["routed"]
    assert (stored["source"], stored["message_id"], stored["duplicate"]) == ("smtp", "<life-1@cand.example>", False)
    assert (routed_line["rule"], routed_line["employee"], routed_line["kind"]) == ("numbered", 1042, "reply")
    assert lines["handed_off"]["mode"] == "forward"
    assert lines["queued"]["purpose"] == "forward" and isinstance(lines["queued"]["outbound_id"], int)
    output = served.output()
    assert "dana.secret" not in output and "0612345678" not in output and "Tuesday" not in output


def _steps(served: Served, inbound_id: int, wanted: set[str]) -> dict[str, dict] | None:
    """The JSON step lines naming this inbound message, by step, once every wanted step is there."""
    found = {}
    for line in served.output().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("inbound_id") == inbound_id:
                found[record["step"]] = record
    return found if wanted <= set(found) else None
