"""The steps after routing, in order: one small module each with `FOR_PROBES` and `run(routed)`.

They run inside the transaction that claimed and routed the message (bridge.inbound.pipeline.process),
so a step's writes (a Mail Log entry marked undeliverable, an acknowledgement queued, a forward queued,
a webhook event) commit with the routing or not at all. The order matters: the bounce step first (it
rewrites the reason others show), the webhook event last (its data shows what the others did).
"""

from __future__ import annotations

from bridge.inbound.after_routing import acknowledgement, bounce, hand_off, probe_aside, webhook_event
from bridge.inbound.after_routing.context import Routed

STEPS = (bounce, probe_aside, acknowledgement, hand_off, webhook_event)


def run(routed: Routed) -> None:
    """Every step in order; a probe only passes the steps made for probes."""
    for step in STEPS:
        if step.FOR_PROBES or not routed.probe:
            step.run(routed)
