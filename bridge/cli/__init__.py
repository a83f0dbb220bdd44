"""The `replybridge` command (docs/ARCHITECTURE.md, "Contract"). Settings come from REPLYBRIDGE_* variables."""

from __future__ import annotations

import click

from bridge.cli import (  # change_cmds adds `set` and `remove` to setup_cmds' groups as it loads
    api_cmds,
    change_cmds,  # noqa: F401
    common,
    inbound_cmds,
    mail_cmds,
    oauth_cmds,
    setup_cmds,
    webhook_cmds,
)
from bridge.cli.common import BridgeGroup


@click.group(cls=BridgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="replybridge")
def cli() -> None:
    """replybridge: mail between recruiting software and candidates, from numbered per-employee addresses."""


for command in (*setup_cmds.COMMANDS, *mail_cmds.COMMANDS, *inbound_cmds.COMMANDS, *api_cmds.COMMANDS,
                *webhook_cmds.COMMANDS, *oauth_cmds.COMMANDS):
    cli.add_command(command)


@cli.command()
def serve() -> None:
    """Run the SMTP receiver, IMAP pollers, worker and web pages until stopped."""
    from bridge.ops.serve import serve as run  # the web stack loads only here: other commands start faster

    run(common.engine())


def main() -> None:
    cli(prog_name="replybridge")
