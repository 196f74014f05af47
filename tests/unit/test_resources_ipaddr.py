"""Floating IP argument forms, findif, alias labels (docs/heartbeat.md#ipaddr-arguments)."""

from __future__ import annotations

import ipaddress

import pytest

from pulse.config.model import ResourceSpec
from pulse.resources.ipaddr import (
    FindifError,
    IPArgument,
    Route,
    default_broadcast,
    findif,
    free_alias_label,
    ip_argument_text,
    is_bare_ip,
    parse_ip_argument,
)

V4 = ipaddress.IPv4Address
NET = ipaddress.ip_network


def route(dst: str, ifname: str | None, **kw: object) -> Route:
    return Route(network=NET(dst), ifname=ifname, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- parsing


def test_bare_ip_has_nothing_but_the_address() -> None:
    arg = parse_ip_argument("198.51.100.10")
    assert arg == IPArgument(address=V4("198.51.100.10"))


def test_mask_as_bits() -> None:
    assert parse_ip_argument("198.51.100.10/24").prefixlen == 24


def test_mask_as_dotted_quad() -> None:
    assert parse_ip_argument("198.51.100.10/255.255.255.128").prefixlen == 25


def test_non_contiguous_dotted_mask_is_refused() -> None:
    with pytest.raises(ValueError, match="not contiguous"):
        parse_ip_argument("198.51.100.10/255.0.255.0")


@pytest.mark.parametrize("mask", ["0", "33", "abc"])
def test_out_of_range_or_garbage_mask_is_refused(mask: str) -> None:
    with pytest.raises(ValueError):
        parse_ip_argument(f"198.51.100.10/{mask}")


def test_mask_and_interface() -> None:
    arg = parse_ip_argument("198.51.100.10/24/eth1")
    assert (arg.prefixlen, arg.interface, arg.label, arg.broadcast) == (24, "eth1", None, None)


def test_asterisk_pair_interface_with_alias_label() -> None:
    # IPaddr::192.168.0.142/24/eth0:0 from the Asterisk pair's guide, in a documentation range.
    arg = parse_ip_argument("198.51.100.142/24/eth0:0")
    assert arg.interface == "eth0"
    assert arg.label == "eth0:0"
    assert arg.prefixlen == 24


def test_third_part_starting_with_a_digit_is_the_broadcast() -> None:
    arg = parse_ip_argument("198.51.100.10/24/198.51.100.255")
    assert arg.interface is None
    assert arg.broadcast == V4("198.51.100.255")


def test_fourth_part_is_the_broadcast() -> None:
    arg = parse_ip_argument("198.51.100.10/24/eth0:web/198.51.100.127")
    assert (arg.interface, arg.label, arg.broadcast) == ("eth0", "eth0:web", V4("198.51.100.127"))


def test_anything_after_a_third_part_broadcast_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing may follow"):
        parse_ip_argument("198.51.100.10/24/198.51.100.255/eth0")


def test_empty_mask_means_find_it_out() -> None:
    arg = parse_ip_argument("198.51.100.10//eth0")
    assert arg.prefixlen is None
    assert arg.interface == "eth0"


@pytest.mark.parametrize(
    "text",
    ["", "example.com", "198.51.100.300", "198.51.100.10/24/eth0/198.51.100.255/x"],
)
def test_malformed_arguments_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ip_argument(text)


def test_label_longer_than_an_interface_name_is_refused() -> None:
    with pytest.raises(ValueError, match="bad label"):
        parse_ip_argument("198.51.100.10/24/eth0:averylonglabel")


def test_ipv6_address_prefix_and_interface() -> None:
    arg = parse_ip_argument("2001:db8::10/64/eth0")
    assert arg.address == ipaddress.IPv6Address("2001:db8::10")
    assert (arg.prefixlen, arg.interface, arg.broadcast) == (64, "eth0", None)


def test_ipv6_has_no_labels_or_broadcast() -> None:
    with pytest.raises(ValueError, match="IPv4 only"):
        parse_ip_argument("2001:db8::10/64/eth0:1")
    with pytest.raises(ValueError, match="no broadcast"):
        parse_ip_argument("2001:db8::10/64/eth0/2001:db8::ff")


# --------------------------------------------------------------------------- the word


def test_argument_of_a_bare_ip_word_is_the_word() -> None:
    spec = ResourceSpec(raw="198.51.100.10/24", agent="IPaddr", args=("198.51.100.10/24",))
    assert ip_argument_text(spec) == "198.51.100.10/24"


def test_ipv6_argument_is_taken_from_the_raw_word_not_the_double_colon_split() -> None:
    spec = ResourceSpec(
        raw="IPv6addr::2001:db8::10/64/eth0", agent="IPv6addr", args=("2001:db8", "10/64/eth0")
    )
    assert ip_argument_text(spec) == "2001:db8::10/64/eth0"


def test_bare_ipv6_word_is_recognised_as_an_address() -> None:
    assert is_bare_ip("2001:db8::10/64")
    assert is_bare_ip("198.51.100.10/24/eth0")
    assert not is_bare_ip("apache2")
    assert not is_bare_ip("IPaddr::198.51.100.10")


# --------------------------------------------------------------------------- findif

ROUTES = (
    route("0.0.0.0/0", "eth0", gateway="198.51.100.1"),
    route("198.51.100.0/24", "eth0"),
    route("198.51.100.128/25", "eth1"),
    route("203.0.113.0/24", "eth2", metric=100),
    route("203.0.113.0/24", "eth3", metric=10),
)


def test_findif_picks_the_connected_route_containing_the_address() -> None:
    placed = findif(parse_ip_argument("198.51.100.10"), ROUTES)
    assert (placed.interface, placed.prefixlen) == ("eth0", 24)
    assert placed.broadcast == V4("198.51.100.255")


def test_findif_prefers_the_most_specific_route() -> None:
    placed = findif(parse_ip_argument("198.51.100.200"), ROUTES)
    assert (placed.interface, placed.prefixlen) == ("eth1", 25)
    assert placed.broadcast == V4("198.51.100.255")


def test_findif_breaks_equal_prefixes_by_lower_metric() -> None:
    assert findif(parse_ip_argument("203.0.113.7"), ROUTES).interface == "eth3"


def test_findif_restricted_to_the_given_interface() -> None:
    placed = findif(parse_ip_argument("203.0.113.7//eth2"), ROUTES)
    assert (placed.interface, placed.prefixlen) == ("eth2", 24)


def test_findif_keeps_a_given_mask_and_broadcast() -> None:
    placed = findif(parse_ip_argument("198.51.100.10/26/198.51.100.250"), ROUTES)
    assert (placed.interface, placed.prefixlen) == ("eth0", 26)
    assert placed.broadcast == V4("198.51.100.250")


def test_findif_derives_broadcast_from_a_given_mask() -> None:
    placed = findif(parse_ip_argument("198.51.100.10/26"), ROUTES)
    assert placed.broadcast == V4("198.51.100.63")


def test_findif_uses_interface_and_mask_as_written_without_routes() -> None:
    placed = findif(parse_ip_argument("192.0.2.99/24/eth9"), ())
    assert (placed.interface, placed.prefixlen) == ("eth9", 24)


def test_only_a_default_route_is_not_enough() -> None:
    with pytest.raises(FindifError) as info:
        findif(parse_ip_argument("198.18.0.10"), ROUTES)
    assert str(info.value) == (
        "cannot find an interface for 198.18.0.10: add /CIDR/IFACE, e.g. 198.18.0.10/24/eth0"
    )


def test_interface_without_a_matching_route_needs_a_mask() -> None:
    with pytest.raises(FindifError, match=r"netmask for 198\.51\.100\.10 on eth2"):
        findif(parse_ip_argument("198.51.100.10//eth2"), ROUTES)


def test_findif_ignores_other_tables_types_and_gateways() -> None:
    routes = (
        route("198.51.100.0/24", "lo", table=255, type=2),  # local table
        route("198.51.100.0/24", "eth5", gateway="203.0.113.1"),
        route("198.51.100.0/24", None),  # multipath: no single device
    )
    with pytest.raises(FindifError):
        findif(parse_ip_argument("198.51.100.10"), routes)


def test_findif_for_ipv6_uses_ipv6_routes_only() -> None:
    routes = (*ROUTES, route("2001:db8::/64", "eth4"), route("::/0", "eth0", gateway="fe80::1"))
    placed = findif(parse_ip_argument("2001:db8::10"), routes)
    assert (placed.interface, placed.prefixlen, placed.broadcast) == ("eth4", 64, None)


@pytest.mark.parametrize(
    ("prefix", "expected"), [(24, "198.51.100.255"), (30, "198.51.100.11"), (31, None), (32, None)]
)
def test_default_broadcast_is_ip_or_inverted_mask(prefix: int, expected: str | None) -> None:
    got = default_broadcast(V4("198.51.100.10"), prefix)
    assert got == (V4(expected) if expected else None)


# --------------------------------------------------------------------------- IPaddr aliases


def test_first_free_alias_label_is_taken() -> None:
    assert free_alias_label("eth0", ["eth0", "eth0:0", "eth0:2"]) == "eth0:1"
    assert free_alias_label("eth0", []) == "eth0:0"


def test_no_alias_label_when_it_would_not_fit_an_interface_name() -> None:
    assert free_alias_label("enp0s31f6abcde", []) is None
