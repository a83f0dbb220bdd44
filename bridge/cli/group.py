"""The top command group: loads a command's module only when that command runs, and prints named errors.

Why lazy: an MTA starts `replybridge ingest` once per message, so the command's start-up is paid per
message; loading every command's module (the ORM, OAuth, the web checks) cost most of a second. Help
and command lists load them all, which is fine there.
"""

from __future__ import annotations

import importlib
import sys

import click

from bridge.errors import BridgeError

EX_TEMPFAIL = 75  # sysexits.h: storing failed for now; an MTA keeps the message and tries again


class LazyGroup(click.Group):
    """Commands named in `lazy` (name -> the modules that make it), imported on first use."""

    def __init__(self, *args: object, lazy: dict[str, tuple[str, ...]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self._load(cmd_name))
        return super().get_command(ctx, cmd_name)

    def _load(self, name: str) -> click.Command:
        modules = [importlib.import_module(f"bridge.cli.{m}") for m in self.lazy[name]]
        for command in modules[0].COMMANDS:
            if command.name == name:
                return command
        raise LookupError(f"bridge.cli.{self.lazy[name][0]} has no command {name!r}")

    def invoke(self, ctx: click.Context) -> object:
        """Named errors become `error: ...` on stderr and exit code 1 (never a traceback)."""
        try:
            return super().invoke(ctx)
        except BridgeError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        except Exception as err:
            database = sys.modules.get("sqlalchemy.exc")  # loaded by every command that opens the database
            if database is None or not isinstance(err, database.SQLAlchemyError):
                raise
            from bridge.cli.common import safe_url  # the ORM is loaded already when its errors arrive

            detail = str(getattr(err, "orig", None) or type(err).__name__).splitlines()[0]
            click.echo(f"error: database {safe_url()}: {detail}", err=True)
            sys.exit(1)
