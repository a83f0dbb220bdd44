"""`replybridge config show`: the settings in effect and where each comes from, secrets masked.

Why: with the environment, a settings file and defaults, "which port does it listen on, and why" is the
first question when something does not answer; this answers it without starting anything.
"""

from __future__ import annotations

import click

from bridge.cli.common import emit_json
from bridge.config import file
from bridge.config.settings import current, shown


@click.group("config")
def config() -> None:
    """The service's settings (environment, then the REPLYBRIDGE_CONFIG file, then defaults)."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True)
def show(as_json: bool) -> None:
    """Print every setting in effect, where it comes from, and secrets masked."""
    rows = shown(current())
    path = file.config_path()
    if as_json:
        emit_json({"file": str(path) if path else None,
                   "settings": [{"name": n, "value": v, "source": s} for n, v, s in rows]})
        return
    click.echo(f"settings file: {path or f'none ({file.CONFIG_VARIABLE} is not set)'}")
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        click.echo(f"{name:<{width}}  {value or '-'}  [{source}]")


COMMANDS = [config]
