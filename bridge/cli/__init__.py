"""The `replybridge` command (docs/ARCHITECTURE.md, "Contract"). Settings come from REPLYBRIDGE_* variables.

Each command's module loads when that command runs (bridge.cli.group): `ingest`, started by an MTA for
every message, must not pay for the others.
"""

from __future__ import annotations

import click

from bridge.cli.group import LazyGroup

# command -> its module (first) and any module that adds subcommands to it
COMMANDS: dict[str, tuple[str, ...]] = {
    **{name: ("setup_cmds",) for name in ("init", "settings", "test")},
    **{name: ("setup_cmds", "change_cmds") for name in ("employee", "smtp", "imap", "alias")},
    **{name: ("mail_cmds",) for name in ("send", "log", "requeue", "worker")},
    "ingest": ("ingest_cmd",),
    **{name: ("inbound_cmds",) for name in ("messages", "unassigned")},
    "token": ("api_cmds",),
    "webhook": ("webhook_cmds",),
    "oauth": ("oauth_cmds",),
    "retention": ("retention_cmds",),
    "audit": ("audit_cmds",),
    "candidate": ("candidate_cmds",),
    "config": ("config_cmds",),
    **{name: ("backup_cmds",) for name in ("backup", "restore")},
    "doctor": ("doctor_cmds",),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="replybridge")
def cli() -> None:
    """replybridge: mail between recruiting software and candidates, from numbered per-employee addresses."""


@cli.command()
def serve() -> None:
    """Run the SMTP receiver, IMAP pollers, worker and web pages until stopped."""
    from bridge.cli.common import engine  # the ORM loads with the command that uses it
    from bridge.ops.serve import serve as run  # the web stack loads only here: other commands start faster

    run(engine())


def main() -> None:
    cli(prog_name="replybridge")
