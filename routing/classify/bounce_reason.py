"""A bounce's short reason label ("user unknown", "mailbox full", "delayed"...), for the Mail Log.

Delay and expiry come first, because they decide what happens to the address; then the remote
server's diagnostic, the RFC 3463 status, and last the bounce's own words.
"""

from __future__ import annotations

import re

from routing.classify.dsn import is_expiry_status, sounds_temporary

# Diagnostic wording -> short label, most specific first.
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), label)
    for pattern, label in (
        (
            r"\bspam|black ?list|block ?list|\brbl\b|spamhaus|reputation|\bjunk\b|bulk e-?mail|unsolicited",
            "rejected as spam",
        ),
        (r"\bvirus|malware|infected", "rejected: virus"),
        (
            r"mailbox (?:is )?full|quota|insufficient (?:storage|disk)|exceeded storage|storage (?:space|limit)|"
            r"mailbox size|too many messages",
            "mailbox full",
        ),
        (
            r"too (?:large|big)|size (?:limit|exceeds)|exceeds? (?:the )?(?:maximum|size)|message size",
            "message too large",
        ),
        (
            r"user unknown|unknown user|no such (?:user|mailbox|recipient|account|address)|does ?n[o']t exist|"
            r"not exist|unknown (?:recipient|address|mailbox)|recipient (?:address )?rejected|"
            r"invalid (?:recipient|address|mailbox|user)|address (?:rejected|not found|unknown)|"
            r"user (?:not found|doesn't|does not)|mailbox (?:not found|unavailable)|"
            r"account (?:does not exist|not found)|"
            r"not (?:a )?(?:valid|known) (?:user|recipient|mailbox)|recipient not found|no mailbox|"
            r"unrouteable address|unknown local|user not listed|not our customer",
            "user unknown",
        ),
        (
            r"(?:account|mailbox|user|address) (?:is |has been )?"
            r"(?:disabled|suspended|inactive|deactivated|closed|locked)|"
            r"\bdisabled\b|\bsuspended\b|deactivated|no longer (?:in use|active|valid)",
            "mailbox disabled",
        ),
        (
            r"host (?:not found|unknown)|domain (?:not found|does not exist)|unknown (?:host|domain)|\bno mx\b|"
            r"name ?server|nxdomain|dns (?:lookup|error|failure)",
            "host unknown",
        ),
        (
            r"relay(?:ing)? (?:denied|not permitted|access denied)|not permitted to relay|unable to relay",
            "relaying denied",
        ),
        (r"\bloop|too many hops", "mail loop"),
        (r"timed? ?out|connection refused|could not connect|unable to connect|not reachable|network", "network error"),
        (
            r"denied|not authori[sz]ed|policy|blocked|refused|rejected|filter|not accept|security|\bspf\b|dkim|dmarc",
            "rejected by policy",
        ),
    )
)
# RFC 3463 subject.detail -> label, for a bounce whose words say nothing more.
_STATUS_REASONS = {
    "1.0": "user unknown",
    "1.1": "user unknown",
    "1.10": "user unknown",
    "1.2": "host unknown",
    "1.6": "mailbox moved",
    "2.1": "mailbox disabled",
    "2.2": "mailbox full",
    "2.3": "message too large",
    "3.4": "message too large",
    "4.1": "network error",
    "4.4": "network error",
    "4.6": "mail loop",
    "7.1": "rejected by policy",
}


def reason_label(
    status: str | None, diagnostic: str | None, text: str, permanent: bool, delayed: bool, expired: bool
) -> str:
    """A short human label: delay and expiry first, then the diagnostic's words, the status, the text."""
    text = text[:4000]
    if delayed or (not permanent and not expired and sounds_temporary(f"{diagnostic or ''}\n{text}")):
        return "delayed"
    if expired or is_expiry_status(status):
        return "expired"
    for pattern, label in _REASONS:
        if diagnostic and pattern.search(diagnostic):
            return label
    if status and status[2:] in _STATUS_REASONS:
        return _STATUS_REASONS[status[2:]]
    for pattern, label in _REASONS:
        if pattern.search(text):
            return label
    return "delivery failed" if permanent else "temporary failure"
