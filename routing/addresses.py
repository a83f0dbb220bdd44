"""Numbered per-employee addresses: the one place they are made and read.

A template holds `{number}` once, e.g. `jobs+{number}@example.com`, `{number}@reply.example.com`
or `jobs-{number}@example.com` (Exchange has no plus addressing by default). Outgoing mail uses
the primary template; replies are recognised under the primary and every accepted alternate, so
an address format that was used before keeps routing after a change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

PLACEHOLDER = "{number}"
# The most of one address header that is read: about 1,000 addresses. The standard library's address parser
# slows down more than linearly with the length, and 400,000 recipients in a To would take minutes.
MAX_ADDRESS_LIST_CHARS = 64 * 1024
_LOCAL_OK = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]*$")
_DOMAIN_OK = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z0-9-]{2,63}$")


def addresses_of(value: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) of each address in an address-list header, as email.utils.getaddresses
    reads them, from at most MAX_ADDRESS_LIST_CHARS of the value, cut after a whole address (at a comma)."""
    if len(value) > MAX_ADDRESS_LIST_CHARS:
        value = value[:_last_list_comma(value, MAX_ADDRESS_LIST_CHARS)]
    return getaddresses([value])


def _last_list_comma(value: str, end: int) -> int:
    """Where the last address ends before `end`: the last comma outside quotes, comments and angle brackets."""
    last, quoted, nesting, escaped = 0, False, 0, False
    for at, char in enumerate(value[:end]):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "(<":
            nesting += 1
        elif not quoted and char in ")>":
            nesting = max(nesting - 1, 0)
        elif char == "," and not quoted and not nesting:
            last = at
    return last


class TemplateError(ValueError):
    """A reply address template that cannot make valid addresses."""


@dataclass(frozen=True)
class AddressTemplate:
    """A validated template; `make` and `parse` are inverse on employee numbers."""

    template: str

    def __post_init__(self) -> None:
        validate_template(self.template)

    @property
    def domain(self) -> str:
        return self.template.rsplit("@", 1)[1].lower()

    def make(self, number: int) -> str:
        if number < 0:
            raise ValueError("employee numbers are not negative")
        return self.template.replace(PLACEHOLDER, str(number))

    def parse(self, address: str) -> int | None:
        """The employee number if `address` (bare, any case) is made by this template."""
        match = self._pattern().fullmatch(address.strip())
        return int(match.group(1)) if match else None

    def _pattern(self) -> re.Pattern[str]:
        before, after = self.template.split(PLACEHOLDER)
        return re.compile(re.escape(before) + r"0*(\d{1,9})" + re.escape(after), re.IGNORECASE)


def validate_template(template: str) -> None:
    """Refuse a template that has no single `{number}` in its local part or no valid domain."""
    if template.count(PLACEHOLDER) != 1:
        raise TemplateError(f"reply address template {template!r} must contain {PLACEHOLDER} exactly once")
    if template.count("@") != 1:
        raise TemplateError(f"reply address template {template!r} must be one address: local@domain")
    local, domain = template.split("@")
    if PLACEHOLDER not in local:
        raise TemplateError(f"reply address template {template!r}: {PLACEHOLDER} belongs before the @")
    if not _LOCAL_OK.match(local.replace(PLACEHOLDER, "1")):
        raise TemplateError(f"reply address template {template!r} has characters not allowed in an address")
    if not _DOMAIN_OK.match(domain):
        raise TemplateError(f"reply address template {template!r} has no valid domain")


@dataclass(frozen=True)
class NumberedAddresses:
    """The primary template (used to send) and the accepted alternates (still recognised)."""

    primary: AddressTemplate
    alternates: tuple[AddressTemplate, ...] = ()

    @classmethod
    def from_strings(cls, primary: str, alternates: list[str] | tuple[str, ...] = ()) -> NumberedAddresses:
        return cls(AddressTemplate(primary), tuple(AddressTemplate(a) for a in alternates if a != primary))

    def make(self, number: int) -> str:
        return self.primary.make(number)

    def parse(self, address: str) -> int | None:
        """The employee number of a bare address under any accepted template, else None."""
        for template in (self.primary, *self.alternates):
            number = template.parse(address)
            if number is not None:
                return number
        return None

    def find_in_header(self, value: str) -> list[tuple[str, int]]:
        """Every (address, number) in an address-list header value, in order."""
        found = []
        for _name, addr in addresses_of(value):
            number = self.parse(addr) if addr else None
            if number is not None:
                found.append((addr, number))
        return found
