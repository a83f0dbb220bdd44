"""`replybridge config show`: the settings in effect with their sources, secrets masked; a bad setting is
an `error: ...` naming it, for `serve` as for any command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import cli

SECRETS = ("fernet-key-not-shown", "metrics-token-not-shown", "db-password-not-shown")


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith("REPLYBRIDGE_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "replybridge.toml"
    path.write_text(f'web_port = 8100\nmetrics_token = "{SECRETS[1]}"\n'
                    f'database_url = "postgresql://rb:{SECRETS[2]}@db.example/rb"\n')
    monkeypatch.setenv("REPLYBRIDGE_CONFIG", str(path))
    monkeypatch.setenv("REPLYBRIDGE_SECRET_KEY", SECRETS[0])
    monkeypatch.setenv("REPLYBRIDGE_WEB_PORT", "8200")
    return path


def test_show_names_each_value_and_its_source_with_secrets_masked(configured: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "show"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "8200" in lines["web_port"] and "[REPLYBRIDGE_WEB_PORT (environment)]" in lines["web_port"]
    assert "********" in lines["metrics_token"] and f"[metrics_token in {configured}]" in lines["metrics_token"]
    assert "postgresql+psycopg://rb:***@db.example/rb" in lines["database_url"]
    assert "2525" in lines["smtp_port"] and "[default]" in lines["smtp_port"]
    assert not any(secret in result.output for secret in SECRETS)


def test_show_as_json(configured: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "show", "--json"], catch_exceptions=False)
    shown = json.loads(result.stdout)
    settings = {s["name"]: s for s in shown["settings"]}
    assert shown["file"] == str(configured)
    assert settings["secret_key"] == {"name": "secret_key", "value": "********",
                                      "source": "REPLYBRIDGE_SECRET_KEY (environment)"}
    assert settings["web_port"]["value"] == "8200"
    assert not any(secret in result.stdout for secret in SECRETS)


def test_serve_with_a_bad_setting_stops_at_start_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLYBRIDGE_")}
    env.update(REPLYBRIDGE_DATABASE_URL=f"sqlite:///{tmp_path}/rb.db", REPLYBRIDGE_SMTP_PORT="smtp")
    command = [sys.executable, "-c", "from bridge.cli import main; main()", "serve"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: REPLYBRIDGE_SMTP_PORT (environment) = 'smtp': Input should be a valid "
                                   "integer, unable to parse string as an integer")
