"""The worker: send what is due, then file sent mail in Sent folders, then deliver webhooks.

`run_once` does all work due now, waiting out alias rate limits (they are not retries), and
leaves retries that are not yet due queued. `serve` calls it on a schedule, and delivers webhooks
in a job of their own so a slow receiver never holds up sending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from bridge.inbound import hand_off, pipeline
from bridge.ops.error_reports import records, report_mail
from bridge.ops.webhooks import dispatch
from bridge.outbound import sent_folder
from bridge.outbound.sender import SendReport, send_due

log = logging.getLogger(__name__)


@dataclass
class RunReport(SendReport):
    """One worker run: the sending (SendReport) and everything after it."""

    filed: int = 0
    routed: int = 0
    delivered: int = 0
    webhooks: int = 0  # webhook deliveries the receivers accepted
    reported: int = 0  # conditions listed in the error report mailed by this run (0: none mailed)


def run_once(engine: Engine, progress: Callable[[RunReport], None] | None = None,
             deliver_webhooks: bool = True, route: bool = True) -> RunReport:
    """All work due now: stored messages not yet routed, the send queue, the Sent-folder appends, then
    the webhooks (last, so the events of this run go out too; `serve` runs them in their own job).
    `route=False` where a routing process routes (`serve`): it routes as messages arrive, so this run
    would only contend with it for the same rows."""
    routed = pipeline.finish_unrouted(engine) if route else 0
    report = RunReport()
    send_due(engine, progress, report)
    report.routed = routed
    report.filed = sent_folder.run(engine)
    report.delivered = hand_off.imap.run(engine)
    if deliver_webhooks:
        report.webhooks = dispatch.deliver_due(engine)
    records.storage_ok(engine)  # this run used the database: its (in-memory) failure conditions are over
    report.reported = _report_errors(engine)
    return report


def _report_errors(engine: Engine) -> int:
    """The error report mail of every condition due now; its own failure is logged, never raised or reported."""
    try:
        return report_mail.report_due(engine)
    except Exception:  # noqa: BLE001 - reporting must not fail the run it follows
        log.warning("error reports: checking for due conditions failed", exc_info=True)
        return 0
