"""The safety rules of pulse_lab.netns: which subnets it accepts, and that it cleans up.

The subnet checks are pure and run anywhere; the rest builds (tiny) namespaces.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pulse_lab.netns import (
    Topology,
    allowed_subnet,
    list_namespaces,
    netns_available,
    overlapping_route,
    parse_routes,
    root_routes,
    validate_subnet,
)

TESTS_DIR = Path(__file__).resolve().parents[1]


def _needs_netns() -> None:
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.parametrize("subnet", ["192.0.2.0/24", "10.0.0.0/8", "198.51.0.0/16", "0.0.0.0/0"])
def test_subnets_outside_the_documentation_ranges_are_refused(subnet: str) -> None:
    with pytest.raises(ValueError, match="refused"):
        allowed_subnet(subnet)


@pytest.mark.parametrize("subnet", ["198.51.100.0/24", "203.0.113.0/24", "203.0.113.64/26"])
def test_subnets_inside_the_documentation_ranges_are_accepted(subnet: str) -> None:
    assert allowed_subnet(subnet) == ipaddress.IPv4Network(subnet)


def test_a_subnet_with_host_bits_set_is_refused() -> None:
    with pytest.raises(ValueError, match="not an IPv4 subnet"):
        allowed_subnet("198.51.100.1/24")


def test_a_subnet_the_root_namespace_routes_is_refused() -> None:
    routes = [ipaddress.IPv4Network("198.51.100.0/25")]
    with pytest.raises(ValueError, match=r"root namespace routes 198\.51\.100\.0/25"):
        validate_subnet("198.51.100.0/24", routes=routes)
    assert validate_subnet("203.0.113.0/24", routes=routes) == ipaddress.IPv4Network(
        "203.0.113.0/24"
    )


def test_default_routes_do_not_count_as_overlapping() -> None:
    out = json.dumps(
        [
            {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
            {"dst": "192.0.2.0/24", "dev": "eth0"},
            {"type": "local", "dst": "192.0.2.2", "dev": "eth0", "table": "local"},
            {"dst": "fd00::/64", "dev": "eth0"},
        ]
    )
    routes = parse_routes(out)
    assert routes == [ipaddress.IPv4Network("192.0.2.0/24"), ipaddress.IPv4Network("192.0.2.2/32")]
    assert overlapping_route(ipaddress.IPv4Network("198.51.100.0/24"), routes) is None


def test_a_route_of_the_real_root_namespace_is_detected_as_overlapping() -> None:
    if os.geteuid() != 0 and netns_available() is not None:
        pytest.skip("needs iproute2")
    routes = root_routes()
    if not routes:
        pytest.skip("the root namespace routes nothing but defaults")
    # Pick a subnet the root namespace really routes, e.g. its LAN or 127.0.0.0/8:
    # nothing is created, the check alone must refuse it.
    routed = routes[0]
    assert overlapping_route(routed, routes) == routed
    inside = next(routed.subnets(new_prefix=min(routed.prefixlen + 1, 32)))
    assert overlapping_route(inside, routes) is not None


@pytest.mark.netns
def test_add_lan_refuses_a_forbidden_subnet_before_creating_anything() -> None:
    _needs_netns()
    before = set(list_namespaces())
    with Topology() as topo, pytest.raises(ValueError, match="refused"):
        topo.add_lan("lan0", "192.0.2.0/24")
    assert set(list_namespaces()) <= before


@pytest.mark.netns
def test_veth_ends_never_appear_in_the_root_namespace(topology: Topology) -> None:
    lan = topology.add_lan("lan0", "203.0.113.0/24")
    node = topology.add_node("a")
    iface = topology.connect(node, lan, "eth7", "203.0.113.7")
    root_links = {
        link["ifname"] for link in json.loads(subprocess.check_output(["ip", "-j", "link"]))
    }
    assert iface.bridge_port not in root_links
    assert "eth7" not in root_links


@pytest.mark.netns
def test_close_stops_processes_and_deletes_every_namespace() -> None:
    _needs_netns()
    topo = Topology()
    node = topo.add_node("a")
    topo.add_lan("lan0", "198.51.100.0/24")
    proc = topo.popen(node, ["sleep", "300"])
    names = topo.namespaces()
    assert set(names) <= set(list_namespaces())
    topo.close()
    topo.close()  # idempotent
    assert proc.poll() is not None
    assert not set(names) & set(list_namespaces())


@pytest.mark.netns
def test_namespaces_left_by_a_dead_process_are_deleted_at_start() -> None:
    _needs_netns()
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=10)
    stale = f"pz{dead.pid}-1-x"
    subprocess.run(["ip", "netns", "add", stale], check=True, timeout=10)
    try:
        with Topology("pz"):
            assert stale not in list_namespaces()
    finally:
        subprocess.run(["ip", "netns", "delete", stale], capture_output=True, timeout=10)


@pytest.mark.netns
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_test_process_still_deletes_its_namespaces(signum: int) -> None:
    _needs_netns()
    script = textwrap.dedent(
        """
        import sys, time
        sys.path.insert(0, sys.argv[1])
        from pulse_lab.netns import Topology
        topo = Topology()
        topo.add_node("a")
        print(" ".join(topo.namespaces()), flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(TESTS_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        names = proc.stdout.readline().split()
        assert names and set(names) <= set(list_namespaces())
        proc.send_signal(signum)
        proc.wait(timeout=20)
        deadline = time.monotonic() + 5
        while set(names) & set(list_namespaces()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not set(names) & set(list_namespaces())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.netns
def test_connect_refuses_an_address_outside_the_lan_or_with_another_prefix(
    topology: Topology,
) -> None:
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    node = topology.add_node("a")
    with pytest.raises(ValueError, match="not a host address"):
        topology.connect(node, lan, "eth0", "203.0.113.5")
    with pytest.raises(ValueError, match="not a host address"):
        topology.connect(node, lan, "eth0", "198.51.100.255")
    with pytest.raises(ValueError, match="prefix must match"):
        topology.connect(node, lan, "eth0", "198.51.100.5/25")
    assert topology.connect(node, lan, "eth0", "198.51.100.5/24").ip == "198.51.100.5"
