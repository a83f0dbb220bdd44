"""`replybridge ingest`: store and route raw messages from files or standard input, as an MTA's pipe runs it.

An MTA starts it once per message, so its start-up is paid per message: this module loads only click and
the standard library. A running `serve` is passed the messages (bridge.inbound.ingest_socket) and routes them
itself; otherwise, and for `--json`, `--dry-run` and `--explain` (which show the route), the messages are
stored and routed here, loading the ORM and the router only then.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bridge.cli.group import EX_TEMPFAIL
from bridge.errors import ConfigError, InputError
from bridge.inbound import ingest_socket
from bridge.inbound.limits import MAX_MESSAGE_BYTES


def _read_inputs(files: tuple[str, ...]) -> list[tuple[str, bytes]]:
    inputs = []
    for name in files or ("-",):
        try:
            if name == "-":
                raw = sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)
            else:
                with Path(name).open("rb") as f:
                    raw = f.read(MAX_MESSAGE_BYTES + 1)
        except OSError as err:
            raise InputError(f"cannot read {name}: {err.strerror}") from None
        if len(raw) > MAX_MESSAGE_BYTES:
            raise InputError(f"{'standard input' if name == '-' else name} is larger than {MAX_MESSAGE_BYTES:,} bytes "
                             "(25 MiB), the most any source takes; nothing was stored")
        if not raw.strip():
            raise InputError(f"{'standard input' if name == '-' else name} holds no message")
        inputs.append((name, raw))
    return inputs


@click.command()
@click.argument("files", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One object per message; a list for several files.")
@click.option("--dry-run", is_flag=True, help="Store nothing.")
@click.option("--explain", is_flag=True, help="Print the decision and each rule's verdict.")
def ingest(files: tuple[str, ...], as_json: bool, dry_run: bool, explain: bool) -> None:
    """Store and route raw messages from files or standard input (`-`), e.g. from an MTA pipe.

    Exit 0 once every message is stored; 75 (try again later) when storage fails, the settings cannot be read
    or anything else goes wrong before the commit, so the MTA keeps it; 1 only when a message itself is refused
    (unreadable, empty, too large).
    """
    inputs = _read_inputs(files)
    if explain and not dry_run:
        raise click.UsageError("--explain goes with --dry-run (it stores nothing)")
    try:
        _store_or_explain(inputs, as_json, dry_run, several=len(files) > 1)
    except ConfigError as err:  # the set-up (settings file, key, database), not the message: keep it queued
        if dry_run:
            raise
        click.echo(f"error: {err}; exit 75 so the sender tries again", err=True)
        sys.exit(EX_TEMPFAIL)
    except Exception as err:  # a fault of ours must not bounce a candidate's reply: the MTA keeps it and retries
        if dry_run:
            raise
        click.echo(f"error: could not take the message ({type(err).__name__}); exit 75 so the sender tries again",
                   err=True)
        sys.exit(EX_TEMPFAIL)


def _store_or_explain(inputs: list[tuple[str, bytes]], as_json: bool, dry_run: bool, several: bool) -> None:
    if not (as_json or dry_run):
        try:
            passed = ingest_socket.pass_on([raw for _name, raw in inputs])
        except ingest_socket.Refused as err:
            click.echo(f"error: the running service could not store the message ({err}); exit 75 so the sender "
                       "tries again", err=True)
            sys.exit(EX_TEMPFAIL)
        if passed is not None:
            for item in passed:
                click.echo(f"#{item.id} already stored" if item.duplicate
                           else f"#{item.id} stored; the running service routes it")
            return
    from bridge.cli import ingest_here  # the ORM and the router: only where this process stores or explains

    if dry_run:
        ingest_here.explain(inputs, as_json, several=several)
    else:
        ingest_here.store(inputs, as_json, several=several)


COMMANDS = [ingest]
