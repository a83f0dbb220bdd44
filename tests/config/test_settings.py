"""The settings: the environment wins over the file, the file over the defaults; a bad value or an unknown
name is an error naming it; the lean reader `ingest` uses agrees with the typed one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.config import file
from bridge.config.settings import Settings, current
from bridge.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the defaults: no REPLYBRIDGE_* variable from the test run's environment."""
    import os

    for name in [n for n in os.environ if n.startswith(file.ENV_PREFIX)]:
        monkeypatch.delenv(name)


def write_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "replybridge.toml"
    path.write_text(text)
    monkeypatch.setenv("REPLYBRIDGE_CONFIG", str(path))
    return path


def test_defaults_without_environment_or_file() -> None:
    settings = current()
    assert (settings.database_url, settings.smtp_host, settings.smtp_port, settings.web_port) == \
        ("sqlite:///replybridge.db", "127.0.0.1", 2525, 8025)
    assert settings.log_format == "text" and settings.secret_key is None and not settings.smtp_connection_log


def test_the_environment_wins_over_the_file_and_the_file_over_the_defaults(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write_file(tmp_path, monkeypatch, 'smtp_port = 2600\nweb_host = "0.0.0.0"\nlog_format = "json"\n')
    monkeypatch.setenv("REPLYBRIDGE_SMTP_PORT", "2700")
    settings = current()
    assert (settings.smtp_port, settings.web_host, settings.log_format, settings.web_port) == \
        (2700, "0.0.0.0", "json", 8025)


def test_a_changed_file_or_environment_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_file(tmp_path, monkeypatch, "web_port = 8100\n")
    assert current().web_port == 8100
    path.write_text("web_port = 8200   # a longer line, so the size changes too\n")
    assert current().web_port == 8200
    monkeypatch.setenv("REPLYBRIDGE_WEB_PORT", "8300")
    assert current().web_port == 8300


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("REPLYBRIDGE_SMTP_PORT", "x", "REPLYBRIDGE_SMTP_PORT (environment) = 'x'"),
    ("REPLYBRIDGE_WEB_PORT", "70000", "REPLYBRIDGE_WEB_PORT (environment) = '70000'"),
    ("REPLYBRIDGE_WEB_HTTPS", "maybe", "REPLYBRIDGE_WEB_HTTPS (environment) = 'maybe'"),
    ("REPLYBRIDGE_LOG_FORMAT", "xml", "REPLYBRIDGE_LOG_FORMAT (environment) = 'xml'"),
    ("REPLYBRIDGE_WORKER_INTERVAL", "0", "REPLYBRIDGE_WORKER_INTERVAL (environment) = '0'"),
    ("REPLYBRIDGE_METRICS_ALLOW", "10.0.0.0/8,not-an-address", "REPLYBRIDGE_METRICS_ALLOW (environment)"),
    ("REPLYBRIDGE_SMTP_TLS_CERT", "/nowhere/cert.pem", "smtp_tls_cert and smtp_tls_key go together"),
])
def test_a_bad_value_is_an_error_naming_the_setting(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                                     named: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=re.escape(named)):
        current()


def test_a_bad_secret_is_named_but_not_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_file(tmp_path, monkeypatch, "metrics_token = 12345678\n")  # a number, not a string
    with pytest.raises(ConfigError) as raised:
        current()
    assert "metrics_token in" in str(raised.value) and "12345678" not in str(raised.value)


@pytest.mark.parametrize(("text", "message"), [
    ("smtp_prot = 2600\n", "unknown setting 'smtp_prot'"),
    ("[smtp]\nport = 2600\n", "plain `name = value` lines; [smtp] is a table"),
    ("smtp_port = \n", "not valid TOML"),
    ("web_port = 99999\n", "web_port in"),
])
def test_a_bad_file_is_an_error_naming_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                                 message: str) -> None:
    write_file(tmp_path, monkeypatch, text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        current()


def test_a_missing_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLYBRIDGE_CONFIG", str(tmp_path / "nowhere.toml"))
    with pytest.raises(ConfigError, match="cannot read the settings file"):
        current()


def test_empty_values_mean_unset_and_urls_get_their_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLYBRIDGE_SECRET_KEY", "")
    monkeypatch.setenv("REPLYBRIDGE_SMTP_MAX_BYTES", "")
    monkeypatch.setenv("REPLYBRIDGE_INGEST_SOCKET", "")
    monkeypatch.setenv("REPLYBRIDGE_DATABASE_URL", "postgres://rb@db.example/rb")
    settings = current()
    assert settings.secret_key is None and settings.smtp_max_bytes is None and settings.ingest_socket == ""
    assert settings.database_url == "postgresql+psycopg://rb@db.example/rb"


def test_the_lean_reader_agrees_with_the_typed_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ingest` reads its socket and the database URL without pydantic: same file, same precedence."""
    write_file(tmp_path, monkeypatch, 'ingest_socket = "/run/rb/ingest"\ndatabase_url = "sqlite:///a.db"\n')
    assert file.raw("ingest_socket") == current().ingest_socket == "/run/rb/ingest"
    monkeypatch.setenv("REPLYBRIDGE_INGEST_SOCKET", "/run/other")
    assert file.raw("ingest_socket") == current().ingest_socket == "/run/other"
    assert file.raw("database_url") == current().database_url == "sqlite:///a.db"


def test_the_readme_lists_every_setting_and_no_other() -> None:
    """The README's Settings table is where admins look: it names each setting's variable exactly once."""
    text = README.read_text()
    section = text.split("## Settings", 1)[1].split("Portal settings", 1)[0]
    listed = set(re.findall(r"`(REPLYBRIDGE_[A-Z_]+)`", section))
    assert listed == {file.env_name(name) for name in Settings.model_fields} | {file.CONFIG_VARIABLE}
