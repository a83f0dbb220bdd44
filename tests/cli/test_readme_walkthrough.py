"""The issue's acceptance, as a new user runs it: the installed `replybridge` command, step by step.

Employee 1042 with an alias linked to an IMAP server sends to a candidate: the mail arrives from
`jobs+1042@...`, the Mail Log says `sent`, and the message is in the Sent folder exactly once. The
`serve` command does the same work in the background and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.bridge import make_bridge
from tests.helpers.messages import reply
from tests.helpers.ports import free_port
from tests.servers.dovecot import DOVECOT_BINARY, Dovecot
from tests.servers.smtp_peers import SmtpPeer

EXE = shutil.which("replybridge", path=str(Path(sys.executable).parent)) or shutil.which("replybridge")
Run = Callable[..., str]
pytestmark = [
    pytest.mark.skipif(EXE is None, reason="the replybridge command is not installed (pip install -e .)"),
    pytest.mark.skipif(not DOVECOT_BINARY.exists(), reason=f"Dovecot is not installed ({DOVECOT_BINARY})"),
]


def environment(dovecot: Dovecot) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLYBRIDGE_")}
    env.update(SMTP_PW="smtp-secret-1", IMAP_PW=dovecot.password, PYTHONUNBUFFERED="1")
    return env


def subprocess_runner(cwd: Path, env: dict[str, str]) -> Run:
    def run(*args: str) -> str:
        done = subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"replybridge {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout
    return run


def set_up(run: Run, peer: SmtpPeer, dovecot: Dovecot) -> None:
    """README's "First message, step by step", against local servers."""
    run("init", "--reply-address", "jobs+{number}@example.test", "--domain", "example.test")
    run("employee", "add", "--number", "1042", "--name", "Ana Ruiz", "--email", "ana@example.test")
    run("smtp", "add", "office", "--host", peer.host, "--port", str(peer.port), "--security", "none",
        "--username", "ana", "--password-env", "SMTP_PW")
    run("imap", "add", "office-imap", "--host", "localhost", "--port", str(dovecot.ssl_port), "--security", "ssl",
        "--username", dovecot.user, "--password-env", "IMAP_PW", "--ca-file", str(dovecot.cafile))
    assert "Status: OK" in run("test", "smtp", "office")
    assert "Status: OK" in run("test", "imap", "office-imap")
    run("alias", "add", "--employee", "1042", "--description", "Ana - jobs", "--display-name", "Ana Ruiz",
        "--from", "ana@example.test", "--smtp", "office", "--default")
    run("alias", "link", "Ana - jobs", "--imap", "office-imap")


def assert_delivered_and_filed(run: Run, peer: SmtpPeer, dovecot: Dovecot) -> None:
    assert len(peer.received) == 1
    msg = email.message_from_bytes(peer.received[0].data, policy=email.policy.default)
    assert msg["From"].addresses[0].addr_spec == "jobs+1042@example.test"
    log = json.loads(run("log", "--json"))
    assert [(e["status"], e["sent_folder"]) for e in log if e["purpose"] == "message"] == [("sent", "appended")]
    assert dovecot.folder_messages("Sent") == [peer.received[0].data]


def test_new_user_sends_first_message(tmp_path: Path, smtp_peer, dovecot: Dovecot) -> None:
    peer = smtp_peer("accept", auth=("ana", "smtp-secret-1"))
    run = subprocess_runner(tmp_path, environment(dovecot))
    set_up(run, peer, dovecot)
    mail_id = run("send", "--employee", "1042", "--to", "candidate@example.org", "--subject", "Your interview",
                  "--body", "Hello!").strip()
    assert mail_id.isdigit()
    run("worker", "--once")
    assert_delivered_and_filed(run, peer, dovecot)
    assert "sent" in run("log")


def test_serve_sends_in_the_background_and_stops_on_sigterm(tmp_path: Path, smtp_peer, dovecot: Dovecot,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    peer = smtp_peer("accept", auth=("ana", "smtp-secret-1"))
    env = environment(dovecot)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bridge = make_bridge(f"sqlite:///{tmp_path}/rb.db", tmp_path, monkeypatch)  # set-up in-process: faster
    set_up(lambda *args: bridge.run(*args).stdout, peer, dovecot)
    bridge.run("send", "--employee", "1042", "--to", "candidate@example.org", "--subject", "Hi", "--body", "Hello!")
    env = dict(os.environ)
    port = free_port()
    env["REPLYBRIDGE_SMTP_PORT"] = str(port)
    env["REPLYBRIDGE_WEB_PORT"] = str(free_port())
    proc = subprocess.Popen([EXE, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not dovecot.folder_messages("Sent"):
            time.sleep(0.2)
        sent_id = json.loads(subprocess_runner(tmp_path, env)("log", "--json"))[0]["message_id"]
        answer = reply("answer@example.org", "candidate@example.org", "jobs@example.test", in_reply_to=sent_id)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:  # the candidate answers through serve's receiver
            smtp.sendmail("candidate@example.org", ["jobs+1042@example.test"], answer.encode())
        while time.monotonic() < deadline and not json.loads(subprocess_runner(tmp_path, env)("messages", "list",
                                                                                             "--json")):
            time.sleep(0.2)
    finally:  # to the whole process group, as `timeout`, systemd and a terminal do: the routing child too
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert "stopping" in output and "smtp-secret-1" not in output
    run = subprocess_runner(tmp_path, env)
    assert_delivered_and_filed(run, peer, dovecot)
    [got] = json.loads(run("messages", "list", "--json"))
    assert (got["source"], got["route"], got["employee_number"], got["rule"]) == ("smtp", "employee", 1042, "thread")
    assert got["delivery"] == "forward not_sent"  # no database-wide account here: the forward waits, visible
