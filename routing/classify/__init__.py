"""Is an inbound message a human reply, an automatic message, or a bounce?

The router needs this before anything else (docs/ARCHITECTURE.md, "Routing order"): a bounce marks our
outbound message undeliverable and is never a candidate's message; an automatic message is routed
like a reply but flagged and never answered automatically.

Bounce first (`bounce`: RFC 3464 reports, flufl.bounce with guards, our heuristics, Amazon SES),
then the automatic-message signals (`automatic`: MDN, ARF, RFC 3834 Auto-Submitted, vendor
headers, Precedence, list headers, null sender, auto-reply subjects); anything else is a reply.
Each decision names the signal that made it, for the routing log.

Pure: no I/O. `classify` never raises; whatever goes wrong inside degrades to the best answer
the readable parts give, because a message we cannot classify must still be routed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import TypeVar

from routing.classify.automatic import automatic_signal, header_signal
from routing.classify.bounce import BounceInfo, detect_bounce
from routing.classify.evidence import Evidence
from routing.classify.mime_view import bounded_view, raw_headers

__all__ = ["BounceInfo", "Classification", "classify"]

REPLY = "reply"
AUTO_REPLY = "auto_reply"
BOUNCE = "bounce"

_T = TypeVar("_T")


@dataclass(frozen=True)
class Classification:
    """The decision and the signal that made it, for the routing log."""

    kind: str  # "reply" | "auto_reply" | "bounce"
    reason: str
    bounce: BounceInfo | None = None
    automatic: bool = False


def classify(msg: Message, envelope_from: str | None = None) -> Classification:
    """Decide reply / auto_reply / bounce; never raises (a broken message is still routed)."""
    try:
        view = bounded_view(msg)
    except Exception:  # noqa: BLE001 - the input may be anything a parser produced
        return _fallback(msg, envelope_from)
    try:
        return _decide(Evidence(view, envelope_from))
    except Exception:  # noqa: BLE001 - degrade to the header-only signals
        return _fallback(msg, envelope_from)


def _decide(ev: Evidence) -> Classification:
    """Bounce, else automatic, else reply; a check that breaks is skipped and named in the reason."""
    failures: list[str] = []
    bounce = _safe("bounce", detect_bounce, ev, failures)
    if bounce is not None:
        reason, info = bounce
        return Classification(BOUNCE, reason, bounce=info, automatic=True)
    signal = _safe("auto-reply", automatic_signal, ev, failures)
    if signal is not None:
        return Classification(AUTO_REPLY, signal, automatic=True)
    note = f" ({'; '.join(failures)})" if failures else ""
    return Classification(REPLY, "no automatic or bounce signal" + note)


def _safe(name: str, check: Callable[[Evidence], _T | None], ev: Evidence, failures: list[str]) -> _T | None:
    """Run one check; one that breaks must not hide the others."""
    try:
        return check(ev)
    except Exception as err:  # noqa: BLE001
        failures.append(f"{name} check failed: {type(err).__name__}")
        return None


def _fallback(msg: Message, envelope_from: str | None) -> Classification:
    """Header-only answer for a message the full classifier choked on."""
    try:
        signal = header_signal(raw_headers(msg), envelope_from)
        if signal:
            return Classification(AUTO_REPLY, signal, automatic=True)
    except Exception:  # noqa: BLE001
        pass
    return Classification(REPLY, "no automatic or bounce signal (message partly unreadable)")
