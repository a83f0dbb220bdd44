"""Hand the reply to its recruiter by their hand-off mode (bridge.inbound.hand_off: forward, imap, none)."""

from __future__ import annotations

from bridge.inbound import hand_off
from bridge.inbound.after_routing.context import Routed

FOR_PROBES = False  # a probe proves the way back in; it never lands in a recruiter's mailbox


def run(routed: Routed) -> None:
    hand_off.plan(routed.session, routed.row, routed.settings, routed.parsed.headers)
