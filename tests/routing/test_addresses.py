"""Numbered addresses: made from the primary template, recognised under every accepted one."""

import pytest

from routing.addresses import AddressTemplate, NumberedAddresses, TemplateError


@pytest.mark.parametrize("template, address", [
    ("jobs+{number}@example.com", "jobs+1042@example.com"),
    ("{number}@reply.example.com", "1042@reply.example.com"),
    ("jobs-{number}@example.com", "jobs-1042@example.com"),
])
def test_make_and_parse_are_inverse(template: str, address: str) -> None:
    t = AddressTemplate(template)
    assert t.make(1042) == address
    assert t.parse(address) == 1042
    assert t.parse(address.upper()) == 1042


def test_parse_refuses_near_misses() -> None:
    t = AddressTemplate("jobs+{number}@example.com")
    for other in ("jobs+1042@example.org", "jobs+abc@example.com", "xjobs+1042@example.com",
                  "jobs+1042@example.com.evil.test", "jobs+@example.com", "jobs1042@example.com"):
        assert t.parse(other) is None, other


def test_alternates_keep_old_formats_routing() -> None:
    n = NumberedAddresses.from_strings("jobs-{number}@example.com", ["jobs+{number}@example.com"])
    assert n.make(7) == "jobs-7@example.com"
    assert n.parse("jobs+7@example.com") == 7
    assert n.parse("JOBS-7@EXAMPLE.COM") == 7


def test_find_in_header_reads_address_lists() -> None:
    n = NumberedAddresses.from_strings("jobs+{number}@example.com")
    value = '"Ana" <jobs+1042@example.com>, other@example.com, Bob <JOBS+7@example.com>'
    assert n.find_in_header(value) == [("jobs+1042@example.com", 1042), ("JOBS+7@example.com", 7)]


@pytest.mark.parametrize("bad", ["jobs@example.com", "jobs+{number}{number}@example.com",
                                 "jobs+{number}", "jobs@{number}.example.com", "jobs+{number}@localhost",
                                 "jo bs+{number}@example.com"])
def test_bad_templates_are_refused(bad: str) -> None:
    with pytest.raises(TemplateError):
        AddressTemplate(bad)
