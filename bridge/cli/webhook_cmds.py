"""`replybridge webhook ...`: the applicant tracking system's signed event receivers and their delivery log."""

from __future__ import annotations

import os

import click

from bridge.cli.common import db, emit_json, engine
from bridge.errors import BridgeError, InputError
from bridge.ops.webhooks import dispatch, outbox, subscriptions


@click.group()
def webhook() -> None:
    """Webhooks: events POSTed to the applicant tracking system, signed per the Standard Webhooks spec."""


@webhook.command("add")
@click.argument("url")
@click.option("--secret-env", metavar="VAR", required=True,
              help="Environment variable holding the signing secret, whsec_<base64> (see `webhook new-secret`).")
@click.option("--event", "events", multiple=True, metavar="E",
              help=f"Send only this event (repeatable; default every event): {', '.join(outbox.EVENTS)}.")
def webhook_add(url: str, secret_env: str, events: tuple[str, ...]) -> None:
    """Send events to URL; prints the new webhook's id."""
    secret = os.environ.get(secret_env)
    if not secret:
        raise InputError(f"--secret-env: the environment variable {secret_env} is not set or empty; "
                         f"make a secret with: {subscriptions.MAKE_SECRET}")
    with db() as session:
        hook = subscriptions.add(session, url, secret, events)
        click.echo(hook.id)


@webhook.command("new-secret")
def webhook_new_secret() -> None:
    """Print a new signing secret (whsec_ + base64 of 32 random bytes) for `webhook add --secret-env`."""
    click.echo(subscriptions.new_secret())


@webhook.command("list")
@click.option("--json", "as_json", is_flag=True)
def webhook_list(as_json: bool) -> None:
    """Every webhook: id, URL, events, active (never the secret)."""
    with db() as session:
        rows = [subscriptions.webhook_json(hook) for hook in subscriptions.list_all(session)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("No webhooks (replybridge webhook add URL --secret-env VAR).")
    for row in rows:
        events = "every event" if row["all_events"] else ", ".join(row["events"])  # type: ignore[arg-type]
        click.echo(f"{row['id']}  {row['url']}  {events}{'' if row['active'] else '  (inactive)'}")


@webhook.command("remove")
@click.argument("webhook_id", type=int)
def webhook_remove(webhook_id: int) -> None:
    """Delete a webhook and its delivery log (pending deliveries are not sent)."""
    with db() as session:
        gone = subscriptions.remove(session, webhook_id)
    click.echo(f"Removed webhook {webhook_id} and {gone} deliveries.")


@webhook.command("deliveries")
@click.option("--webhook", "webhook_id", type=int, help="Only this webhook's.")
@click.option("--status", type=click.Choice(subscriptions.STATUSES))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
def webhook_deliveries(webhook_id: int | None, status: str | None, limit: int, as_json: bool) -> None:
    """The delivery log, newest first: each event sent to each webhook, its attempts and the last answer."""
    with db() as session:
        rows = [subscriptions.delivery_json(d) for d in subscriptions.deliveries(session, webhook_id, status, limit)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("No deliveries.")
    for r in rows:
        answer = r["last_error"] or (f"HTTP {r['last_status']}" if r["last_status"] else "")
        when = f"next try {r['next_attempt_at']}" if r["status"] == "pending" else (r["delivered_at"] or "")
        click.echo(f"#{r['id']} webhook {r['webhook']} {r['event_type']} {r['event_id']} {r['status']} "
                   f"attempts {r['attempts']} created {r['created_at']} {when} {answer}".rstrip())


@webhook.command("retry")
@click.argument("delivery_ids", nargs=-1, type=int, required=True)
def webhook_retry(delivery_ids: tuple[int, ...]) -> None:
    """Make pending or failed deliveries due now (same webhook-id, so receivers still dedupe them)."""
    with db() as session:
        subscriptions.retry(session, delivery_ids)
    click.echo(f"{len(delivery_ids)} deliveries due now; `replybridge worker --once` or serve sends them.")


@webhook.command("test")
@click.argument("webhook_id", type=int)
@click.option("--timeout", default=dispatch.TIMEOUT_S, show_default=True, type=float, help="Seconds.")
def webhook_test(webhook_id: int, timeout: float) -> None:
    """POST a signed `webhook.test` event to the webhook now; exit 1 unless it answers 2xx."""
    with db() as session:
        delivery_id = subscriptions.queue_test(session, webhook_id).id
    result = dispatch.deliver_now(engine(), delivery_id, timeout)
    if result is None:
        click.echo(f"Delivery #{delivery_id} was taken by a running worker: see `replybridge webhook deliveries`.")
        return
    if result.status != "delivered":
        raise BridgeError(f"webhook {webhook_id} did not accept the test event (delivery #{delivery_id}): "
                         f"{result.last_error}")
    click.echo(f"Status: OK (HTTP {result.last_status}, delivery #{delivery_id}, webhook-id {result.event_id})")


COMMANDS: list = [webhook]
