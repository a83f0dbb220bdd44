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


def test_a_long_address_list_is_read_up_to_its_cap_and_cut_after_a_whole_address() -> None:
    from routing.addresses import MAX_ADDRESS_LIST_CHARS, addresses_of

    value = ", ".join(f'"Doe, J{n}" <j{n}@example.org>' for n in range(20_000))
    found = addresses_of(value)
    assert 1_000 < len(found) < 20_000 and found[0] == ("Doe, J0", "j0@example.org")
    last = len(found) - 1
    assert found[-1] == (f"Doe, J{last}", f"j{last}@example.org")  # whole, never a truncated address
    assert len(", ".join(f'"{n}" <{a}>' for n, a in found)) <= MAX_ADDRESS_LIST_CHARS
    assert addresses_of("a@example.org, B <b@example.org>") == [("", "a@example.org"), ("B", "b@example.org")]
