"""deploy/: the systemd units as systemd reads them (`systemd-analyze verify`, any warning about them fails),
their sandbox's exposure (`systemd-analyze security --offline`), their times against serve's own waits, the
example settings file as the service reads it, the user file, and the backup timer's command run for real.
"""

from __future__ import annotations

import datetime as dt
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.config.settings import current
from bridge.inbound.router_process import RoutingProcess
from bridge.ops import serve
from bridge.ops.services_process import READY_TIMEOUT_S, ServicesProcess
from tests.helpers.bridge import Bridge

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ("replybridge.service", "replybridge-backup.service", "replybridge-backup.timer")
INSTALLED = "/opt/replybridge/bin/replybridge"  # where the units expect the command
EXPOSURE_AT_MOST = 2.0  # systemd-analyze security: 0 (fully sandboxed) to 10; "OK" is below 5
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")


def _command() -> str:
    command = Path(sys.executable).with_name("replybridge")
    assert command.exists(), f"{command}: the package's command is not installed in this environment"
    return str(command)


def _copies(into: Path, change: tuple[str, str] | None = None) -> Path:
    """The units in `into`, running this environment's command (verify requires ExecStart= to exist)."""
    into.mkdir(exist_ok=True)
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace(INSTALLED, _command())
        if change and name == "replybridge.service":
            text = text.replace(*change)
        (into / name).write_text(text)
    return into


def _problems(units: Path) -> list[str]:
    """What `systemd-analyze verify` says about our units: its exit code, and every line naming one of them
    (an unknown key is only a warning, exit code 0)."""
    done = subprocess.run([ANALYZE, "verify", "--man=no", *(str(units / n) for n in UNITS)], capture_output=True,
                          text=True, timeout=60)
    ours = [line for line in (done.stdout + done.stderr).splitlines() if any(n in line for n in UNITS)]
    return ([f"exit code {done.returncode}"] if done.returncode else []) + ours


@needs_analyze
def test_systemd_reads_the_units_without_a_word(tmp_path: Path) -> None:
    assert _problems(_copies(tmp_path / "units")) == []


@needs_analyze
def test_a_misspelt_key_would_fail_the_check(tmp_path: Path) -> None:
    problems = _problems(_copies(tmp_path / "units", ("NoNewPrivileges=true", "NoNewPrivilege=true")))
    assert any("Unknown key 'NoNewPrivilege'" in p for p in problems), problems


@needs_analyze
@pytest.mark.parametrize("unit", ["replybridge.service", "replybridge-backup.service"])
def test_the_sandbox_leaves_little_exposed(unit: str, tmp_path: Path) -> None:
    units = _copies(tmp_path / "units")
    done = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(units / unit)],
                          capture_output=True, text=True, timeout=60)
    level = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr).group(1))
    assert level <= EXPOSURE_AT_MOST, done.stdout
    print(f"\n{unit}: exposure {level} (systemd-analyze security)")


def _settings(name: str) -> dict[str, list[str]]:
    """A unit file's [Service] keys, each with its values in order (a key may repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in (DEPLOY / name).read_text().splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def _seconds(value: str) -> float:
    assert value.endswith("s") and value[:-1].isdigit(), f"{value}: write the unit's times in seconds"
    return float(value[:-1])


def test_the_units_times_cover_serves_own_waits() -> None:
    unit = _settings("replybridge.service")
    assert unit["Type"] == ["notify"] and unit["KillMode"] == ["mixed"]  # serve stops its children itself
    stop_waits = sum(inspect.signature(cls.stop).parameters["timeout"].default + 5  # + 5 s after terminate()
                     for cls in (ServicesProcess, RoutingProcess))
    assert _seconds(unit["TimeoutStopSec"][0]) > stop_waits
    # the watch loop pings the watchdog; restarting the services process holds it up to READY_TIMEOUT_S
    assert _seconds(unit["WatchdogSec"][0]) > READY_TIMEOUT_S + serve.WATCH_S
    assert _seconds(unit["TimeoutStartSec"][0]) > READY_TIMEOUT_S


def test_the_example_settings_are_the_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/replybridge.toml as serve reads it, and where the unit keeps state, sockets and settings."""
    unit = _settings("replybridge.service")
    for name in list(os.environ):
        if name.startswith("REPLYBRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REPLYBRIDGE_CONFIG", str(DEPLOY / "replybridge.toml"))
    settings = current()
    assert "REPLYBRIDGE_CONFIG=/etc/replybridge/replybridge.toml" in unit["Environment"]
    assert unit["StateDirectory"] == ["replybridge"] and unit["RuntimeDirectory"] == ["replybridge"]
    assert settings.database_url == "sqlite:////var/lib/replybridge/replybridge.db"
    assert settings.ingest_socket == "/run/replybridge/ingest"
    assert (settings.smtp_host, settings.smtp_port) == ("127.0.0.1", 2525)  # no capability for port 25 needed
    assert unit["CapabilityBoundingSet"] == [""] and unit["User"] == ["replybridge"]


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_the_user_file_makes_the_services_user(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(["systemd-sysusers", f"--root={root}", str(DEPLOY / "replybridge.sysusers")], check=True,
                   capture_output=True, timeout=60)
    [user] = [line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("replybridge:")]
    assert user.endswith(":replybridge mail bridge:/var/lib/replybridge:/usr/sbin/nologin"), user


def _exec(line: str, backups: Path) -> list[str]:
    """A unit's command line as systemd runs it: %% is %, here with this environment's paths."""
    line = line.replace("%%", "%").replace(INSTALLED, _command()).replace("/var/backups/replybridge", str(backups))
    return shlex.split(line)


def test_the_backup_timer_command_takes_a_new_copy_and_drops_old_ones(lite_bridge: Bridge, tmp_path: Path) -> None:
    unit = _settings("replybridge-backup.service")
    backups = tmp_path / "backups"
    backups.mkdir()
    old = backups / "replybridge-20200101-000000.db"
    old.write_bytes(b"")
    os.utime(old, (time.time() - 15 * 86400,) * 2)
    kept = backups / "replybridge-notes.txt"  # not a backup: never removed
    kept.write_text("")
    os.utime(kept, (time.time() - 15 * 86400,) * 2)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    subprocess.run(_exec(unit["ExecStart"][0], backups), check=True, capture_output=True, timeout=60)
    subprocess.run(_exec(unit["ExecStartPost"][0], backups), check=True, capture_output=True, timeout=60)
    [copy] = sorted(backups.glob("replybridge-*.db"))
    taken = dt.datetime.strptime(copy.name, "replybridge-%Y%m%d-%H%M%S.db").replace(tzinfo=dt.UTC)
    assert taken >= before and copy.read_bytes().startswith(b"SQLite format 3\0")
    assert kept.exists()
