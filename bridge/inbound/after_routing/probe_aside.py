"""A probe of ours that routing could not place is dismissed at once: `test loop` and the scheduled loop probe
report it ("arrived but routed wrong", with the reason), and it never waits among the Unassigned messages
people work through."""

from __future__ import annotations

from bridge.inbound.after_routing.context import Routed
from models import utcnow

FOR_PROBES = True  # made for probes alone


def run(routed: Routed) -> None:
    row = routed.row
    if routed.probe and row.route == "unassigned":
        row.triage, row.triaged_at = "dismissed", utcnow()
        routed.session.add(row)
