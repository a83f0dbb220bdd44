"""`candidate erase` and `candidate export`: one candidate's data on request (bridge.privacy)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from bridge.cli.common import db, emit_json
from bridge.errors import InputError
from bridge.privacy import erasure, export


@click.group()
def candidate() -> None:
    """One candidate's data: erase it or export it (requests under GDPR articles 15, 17 and 20)."""


def _note(line: str) -> None:
    click.echo(line, err=True)


@candidate.command("erase")
@click.argument("address")
@click.option("--dry-run", is_flag=True, help="Count what would be erased; change nothing.")
@click.option("--from-imap", is_flag=True, help="Also delete the copies in IMAP folders (Sent folders, "
              "recruiters' INBOXes, poll folders), first; a server that fails stops the erasure.")
@click.option("--json", "as_json", is_flag=True)
def candidate_erase(address: str, dry_run: bool, from_imap: bool, as_json: bool) -> None:
    """Erase everything stored of ADDRESS and the other addresses confirmed as theirs; a receipt stays."""
    with db() as session:
        result = erasure.erase(session, address, dry_run=dry_run, from_imap=from_imap, progress=_note)
    if as_json:
        emit_json(result.as_json())
        return
    for kind, count in result.counts.items():
        click.echo(f"{kind.replace('_', ' ')}: {count}")
    for place, count in result.imap.items():
        click.echo(f"IMAP {place}: {count}")
    if result.erased_before:
        click.echo(f"Erased before ({result.erased_before} earlier receipt(s)).")
    if dry_run:
        click.echo("Dry run: nothing was changed.")
    elif result.total == 0:
        click.echo(f"Nothing was stored of this address. Receipt {result.receipt_id}.")
    else:
        click.echo(f"Erased. Receipt {result.receipt_id}.")


@candidate.command("export")
@click.argument("address")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The zip to write (messages.mbox and candidate.json); an existing file is not overwritten.")
def candidate_export(address: str, out: Path) -> None:
    """Export ADDRESS's mail and records (and those of their other confirmed addresses) into one zip."""
    try:
        target = out.open("xb")  # exclusive: never overwrites, even a file made a moment ago
    except FileExistsError:
        raise InputError(f"{out} exists already; give another --out file (nothing was overwritten)") from None
    except OSError as err:
        raise InputError(f"cannot write {out}: {err.strerror}") from None

    def progress(done: int, total: int) -> None:
        _note(f"{done}/{total} messages")

    try:
        with target, db() as session:
            result = export.export(session, address, target, progress)
    except BaseException:
        with contextlib.suppress(OSError):
            out.unlink()
        raise
    click.echo(f"Exported {result.inbound} received and {result.outbound} sent messages to {out}")


COMMANDS = [candidate]
