"""Suggested employees for an Unassigned message: who probably should get it, and why.

The look-ups (bridge/inbound/suggestion_lookups.py) bring rows of evidence for a whole page of messages; this module
decides which rows count for one message and ranks the employees. Four kinds of evidence, strongest
first:

1. ``subject``: the subject answers one we sent ("Re: Backend engineer" -> "Backend engineer"). It
   names this very exchange, so it is the strongest sign.
2. ``address``: the sender's address is a candidate in a conversation with the employee. (A candidate
   with conversations with one employee only is routed before it gets here, so this usually names
   several employees and needs a subject to pick one.)
3. ``assigned``: a person already assigned another message from this sender to the employee.
4. ``domain``: the sender's domain is that of candidates in the employee's conversations, the weakest:
   a domain is shared by many people. Free-mail domains (gmail.com ...) never count.

The score is a bit mask of the kinds found (8, 4, 2, 1), so a stronger kind outranks any combination
of weaker ones and, among equals, more kinds of evidence rank higher. Ties go to the newest evidence,
then to the name. Each kind counts once per employee; several rows of a kind are merged into one line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["subject", "address", "assigned", "domain"]
WEIGHT: dict[str, int] = {"subject": 8, "address": 4, "assigned": 2, "domain": 1}

# Shared by unrelated people: a sender there says nothing about whose candidate they are.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com", "ymail.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "web.de", "proton.me", "protonmail.com", "pm.me", "mail.com",
    "t-online.de", "freenet.de", "posteo.de", "mailbox.org", "fastmail.com", "zoho.com", "yandex.com", "mail.ru",
    "qq.com", "163.com", "orange.fr", "laposte.net", "libero.it", "seznam.cz", "wp.pl", "onet.pl",
})
FREE_MAIL_FAMILIES = ("gmx.", "yahoo.", "hotmail.", "outlook.", "live.", "yandex.")  # gmx.de, yahoo.co.uk ...

# One reply or forward marker in many languages, with an optional counter: "Re:", "RE[2]:", "AW:", "Fwd:",
# "WG:", "Antw:", "SV:", "TR:", "Re :"; or one [tag] a list or a mail gateway put in front ("[EXTERNAL]").
_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|vs|fwd?|fw|wg|antw|tr|ref|rif|res|odp|vl)\s*(?:\[\d+\]|\(\d+\))?\s*:"
                     r"|\[[^\]]{0,40}\])\s*", re.IGNORECASE)
MAX_PREFIXES = 10


@dataclass(frozen=True)
class Found:
    """One row a look-up found: `value` is the subject we sent, the candidate address, the sender address
    or the domain; `count` how many rows it stands for; `when` the newest of them."""

    kind: Kind
    employee_number: int
    employee_name: str
    value: str
    when: dt.datetime | None = None
    count: int = 1

    @property
    def key(self) -> tuple[str, str]:
        """What the row is about, comparable with `evidence_keys` of a message."""
        value = _squeeze(self.value) if self.kind == "subject" else self.value
        return self.kind, value.casefold()


@dataclass(frozen=True)
class Suggestion:
    employee_number: int
    employee_name: str
    score: int
    evidence: list[str] = field(default_factory=list)


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def subject_keys(subject: str | None) -> list[str]:
    """The subject as written and after each reply marker or tag taken off the front, in that order.

    Every step is kept, not only the last: we may have sent "[Job 42] Backend engineer" ourselves.
    """
    if not subject or not subject.strip():
        return []
    keys = [_squeeze(subject)]
    rest = keys[0]
    for _ in range(MAX_PREFIXES):
        match = _PREFIX.match(rest)
        if not match or match.end() == 0:
            break
        rest = rest[match.end():]
        if not rest:
            break
        keys.append(rest)
    return list(dict.fromkeys(keys))


def subject_lookups(subject: str | None) -> list[str]:
    """Exact values to look up in the indexed subject column: each key as written, in lower case and with
    a capital first letter (replies keep the subject's case; the comparison itself ignores case)."""
    values: list[str] = []
    for key in subject_keys(subject):
        values += [key, key.lower(), key[:1].upper() + key[1:]]
    return list(dict.fromkeys(values))


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].strip().lower() or None


def is_free_mail(domain: str) -> bool:
    domain = domain.lower()
    return domain in FREE_MAIL or domain.startswith(FREE_MAIL_FAMILIES)


def telling_domain(address: str | None) -> str | None:
    """The sender's domain when it says something about the sender (not a free-mail domain)."""
    domain = domain_of(address)
    return domain if domain and not is_free_mail(domain) else None


def evidence_keys(subject: str | None, sender: str | None) -> set[tuple[str, str]]:
    """The `Found.key`s that are evidence for a message with this subject and sender."""
    keys = {("subject", k.casefold()) for k in subject_keys(subject)}
    if sender:
        keys |= {("address", sender.casefold()), ("assigned", sender.casefold())}
    if domain := telling_domain(sender):
        keys.add(("domain", domain))
    return keys


def _day(when: dt.datetime | None) -> str:
    return f" on {when:%Y-%m-%d}" if when else ""


def _line(kind: str, name: str, value: str, when: dt.datetime | None, count: int) -> str:
    if kind == "subject":
        more = f" (the latest of {count})" if count > 1 else ""
        return f'answers "{value}" sent by {name}{_day(when)}{more}'
    if kind == "address":
        return f"same address in a conversation with {name}"
    if kind == "assigned":
        what = "another message" if count == 1 else f"{count} other messages"
        return f"{what} from this sender {'was' if count == 1 else 'were'} assigned to {name}"
    who = "a candidate" if count == 1 else f"{count} candidates"
    return f"same domain {value} as {who} in conversations with {name}"


def _newest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def rank(subject: str | None, sender: str | None, rows: Iterable[Found]) -> list[Suggestion]:
    """The employees the rows point to for this message, strongest first, each with its evidence."""
    # per employee, per kind: (value of the newest row, its time, rows counted)
    merged: dict[tuple[int, str], dict[str, tuple[str, dt.datetime | None, int]]] = {}
    wanted = evidence_keys(subject, sender)
    for row in (r for r in rows if r.key in wanted):  # the look-ups bring rows for a whole page
        when_row = _aware(row.when)
        kinds = merged.setdefault((row.employee_number, row.employee_name), {})
        if row.kind not in kinds:
            kinds[row.kind] = (row.value, when_row, row.count)
            continue
        value, when, count = kinds[row.kind]
        if when_row is not None and (when is None or when_row > when):
            value = row.value
        kinds[row.kind] = (value, _newest(when, when_row), count + row.count)

    ranked = []
    for (number, name), kinds in merged.items():
        order = sorted(kinds, key=lambda k: -WEIGHT[k])
        newest = None
        for _value, when, _count in kinds.values():
            newest = _newest(newest, when)
        suggestion = Suggestion(number, name, sum(WEIGHT[k] for k in kinds),
                                [_line(k, name, *kinds[k]) for k in order])
        ranked.append((suggestion, newest))
    ranked.sort(key=lambda s: (-s[0].score, -s[1].timestamp() if s[1] else float("inf"),
                               s[0].employee_name.casefold(), s[0].employee_number))
    return [s for s, _ in ranked]


def _aware(when: dt.datetime | None) -> dt.datetime | None:
    """SQLite gives back naive times; every time here is UTC."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=dt.UTC)
