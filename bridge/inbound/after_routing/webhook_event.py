"""`message.routed` into the webhook outbox, in the routing's own transaction (never lost, never early)."""

from __future__ import annotations

from bridge.inbound.after_routing.context import Routed
from bridge.ops.webhooks import outbox

FOR_PROBES = False  # the applicant tracking system never hears of `test loop` probes


def run(routed: Routed) -> None:
    outbox.emit_inbound(routed.session, "message.routed", routed.row)
