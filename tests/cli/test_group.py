"""The lazy top group (bridge.cli.group): every command module's commands are named in bridge.cli.COMMANDS,
each name resolves, and starting one command does not load the others' modules."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click

from bridge import cli as cli_package


def test_every_command_is_named_and_resolves() -> None:
    modules = {m for entry in cli_package.COMMANDS.values() for m in entry}
    defined = {cmd.name: module for module in modules
               for cmd in getattr(importlib.import_module(f"bridge.cli.{module}"), "COMMANDS", [])}
    assert {name: cli_package.COMMANDS[name][0] for name in defined} == defined
    context = click.Context(cli_package.cli)
    for name in cli_package.cli.list_commands(context):
        assert cli_package.cli.get_command(context, name) is not None, name
    smtp = cli_package.cli.get_command(context, "smtp")
    assert {"add", "list", "set", "remove"} <= set(smtp.commands)  # change_cmds' subcommands came along


def test_one_command_loads_only_its_module() -> None:
    code = ("import sys; from bridge.cli import main; sys.argv = ['replybridge', 'ingest', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('bridge.cli.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert loaded.strip().splitlines()[-1] == "['bridge.cli.group', 'bridge.cli.ingest_cmd']"
