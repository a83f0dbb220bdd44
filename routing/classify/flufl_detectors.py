"""flufl.bounce's detectors for the non-standard bounces of many MTAs, and when to believe them.

flufl.bounce knows Exim, qmail, Postfix without DSN, Exchange, Yahoo and more, but its heuristic
detectors misfire on ordinary mail (LLNL takes any ", x@y," in a body line), so its answer only
counts when the headers look like a bounce (`credible`).
"""

from __future__ import annotations

from email.message import Message
from typing import Any

import flufl.bounce

from routing.classify.mime_view import bounded_view, sane_address

# flufl.bounce runs ~25 regexes on every body line, twice: it gets a smaller view still.
_FLUFL_LEAF_CHARS = 16_384
_FLUFL_TOTAL_CHARS = 65_536

# flufl.bounce's own detector order (private, hence the getattr and the fallback in `run_detectors`).
_DETECTORS: tuple[Any, ...] = tuple(getattr(getattr(flufl.bounce, "_scan", None), "_DETECTORS", ()) or ())
_DISPLAY_NAMES = {"Qmail": "qmail"}  # other detectors go by their class name
# Detectors that read any body line; their answers need more than a bounce-looking subject.
_LOOSE_DETECTORS = {"LLNL", "SimpleMatch", "SimpleWarning"}

Found = tuple[str | None, set[str], set[str]]  # detector name (None: no answer), temporary, permanent


def run_detectors(msg: Message) -> Found:
    """flufl.bounce's detectors in its own order, naming the one that answered.

    `all_failures` stops at the first detector that raises (Yale indexes an empty From,
    Sina calls `.lower()` on a Header); running the list ourselves skips only that detector.
    Without the list (a future flufl.bounce), the public call is used.
    """
    small = bounded_view(msg, _FLUFL_LEAF_CHARS, _FLUFL_TOTAL_CHARS)
    if not _DETECTORS:
        try:
            temporary, permanent = flufl.bounce.all_failures(small)
        except Exception:  # noqa: BLE001
            return None, set(), set()
        temp, perm = _addresses(temporary), _addresses(permanent)
        return ("library" if temp or perm else None), temp, perm
    for detector_class in _DETECTORS:
        try:
            temporary, permanent = detector_class().process(small)
        except Exception:  # noqa: BLE001 - one broken detector must not hide the others
            continue
        temp, perm = _addresses(temporary), _addresses(permanent)
        if temp or perm:
            name = getattr(detector_class, "__name__", "detector")
            return _DISPLAY_NAMES.get(name, name), temp, perm
    return None, set(), set()


def credible(detector: str, sender: bool, subject: bool, failed_header: bool, failure_words: bool) -> bool:
    """Whether flufl.bounce's answer counts, given how bounce-like the headers are.

    Its MTA-specific detectors need one bounce sign in the headers; the loose ones (SimpleMatch,
    SimpleWarning) also need failure wording, and LLNL (any ", x@y," line) needs both signs.
    """
    if failed_header or (sender and subject):
        return True
    if detector == "LLNL":
        return False
    if detector not in _LOOSE_DETECTORS:
        return sender or subject
    return failure_words  # SimpleMatch/SimpleWarning quote an MTA's own words; a person rarely pastes them


def _addresses(values: Any) -> set[str]:
    found: set[str] = set()
    for value in values or ():
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        address = sane_address(text)
        if address:
            found.add(address)
    return found
