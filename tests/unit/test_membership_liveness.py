"""Membership: exact deadlines, dead times, links, late heartbeats (docs/heartbeat.md#liveness)."""

from __future__ import annotations

import dataclasses

import pytest

from pulse.config.model import Timing
from pulse.protocol.events import LinkStatus, LinkStatusChanged, NodeStatus, NodeStatusChanged
from pulse.protocol.membership import Membership

TIMING = Timing(keepalive=1000, deadtime=3000, warntime=1500, initdead=6000, deadping=4000)


def members(start: float = 10.0, **kw: object) -> Membership:
    return Membership(
        peers=("beta", "gamma"),
        ping_nodes=("198.51.100.1",),
        links=("eth0", "eth1"),
        timing=TIMING,
        start=start,
        **kw,  # type: ignore[arg-type]
    )


def test_never_heard_node_dies_exactly_initdead_after_start() -> None:
    m = members(start=10.0)
    assert m.node_deadline("beta") == 16.0
    assert m.expire(15.999) == []
    events = m.expire(16.0)
    assert [(e.node, e.new, e.at) for e in events if isinstance(e, NodeStatusChanged)] == [
        ("beta", NodeStatus.DEAD, 16.0),
        ("gamma", NodeStatus.DEAD, 16.0),
        ("198.51.100.1", NodeStatus.DEAD, 16.0),
    ]
    assert events[0].reason == "node beta: is dead"


def test_initdead_applies_to_heard_nodes_until_comms_up() -> None:
    m = members(start=0.0)
    m.heard_status("beta", 1.0, NodeStatus.UP, 5000)
    assert m.node_deadline("beta") == 7.0
    m.declare_comms_up()
    assert m.node_deadline("beta") == 6.0  # its advertised dt, 5 s


def test_after_comms_up_our_deadtime_applies_until_node_advertises() -> None:
    m = members(start=0.0)
    m.heard_status("beta", 1.0, NodeStatus.UP)
    m.heard_status("198.51.100.1", 1.0, NodeStatus.PING)
    m.declare_comms_up()
    assert m.dead_time_ms("beta") == 3000
    assert m.dead_time_ms("198.51.100.1") == 4000  # deadping
    assert m.node_deadline("beta") == 4.0


def test_dead_node_has_no_deadline_and_dies_only_once() -> None:
    m = members(start=0.0)
    m.heard_status("beta", 0.0, NodeStatus.ACTIVE)
    m.heard_status("gamma", 0.0, NodeStatus.ACTIVE)
    m.heard_status("198.51.100.1", 0.0, NodeStatus.PING)
    m.declare_comms_up()
    m.heard_status("gamma", 2.0, NodeStatus.ACTIVE)
    assert [e.node for e in m.expire(3.0) if isinstance(e, NodeStatusChanged)] == ["beta"]
    assert m.node_deadline("beta") is None
    assert [e.node for e in m.expire(3.5) if isinstance(e, NodeStatusChanged)] == []
    assert m.next_deadline() == 4.0


def test_first_packet_on_a_link_brings_it_up_once() -> None:
    m = members()
    event = m.heard_packet("beta", "eth0", 11.0)
    assert event == LinkStatusChanged(node="beta", link="eth0", status=LinkStatus.UP, at=11.0)
    assert m.heard_packet("beta", "eth0", 11.5) is None
    assert m.node("beta").links["eth1"].status is LinkStatus.DEAD


def test_link_dies_one_dead_time_after_its_last_packet() -> None:
    m = members(start=0.0)
    m.declare_comms_up()
    m.heard_status("beta", 0.0, NodeStatus.ACTIVE, 3000)
    m.heard_packet("beta", "eth0", 1.0)
    m.heard_packet("beta", "eth1", 2.0)
    assert m.link_deadline("beta", "eth0") == 4.0
    events = m.expire(4.0)
    assert LinkStatusChanged(node="beta", link="eth0", status=LinkStatus.DEAD, at=4.0) in events
    assert m.node("beta").links["eth1"].status is LinkStatus.UP


def test_unknown_link_name_is_tracked_on_first_packet() -> None:
    m = members()
    assert m.heard_packet("beta", "bond0", 11.0) is not None
    assert "bond0" in m.node("beta").links


def test_status_after_warntime_is_late_but_not_overdue() -> None:
    m = members(start=0.0)
    m.declare_comms_up()
    m.heard_status("beta", 0.0, NodeStatus.ACTIVE, 3000)
    report = m.heard_status("beta", 2.0, NodeStatus.ACTIVE, 3000)
    assert (report.interval_ms, report.late, report.overdue) == (2000, True, False)
    assert report.changes == ()


def test_status_exactly_at_warntime_is_not_late() -> None:
    m = members(start=0.0)
    m.heard_status("beta", 0.0, NodeStatus.ACTIVE)
    m.declare_comms_up()
    assert not m.heard_status("beta", 1.5, NodeStatus.ACTIVE).late


def test_overdue_status_marks_node_dead_then_alive_again() -> None:
    m = members(start=0.0)
    m.declare_comms_up()
    m.heard_status("beta", 0.0, NodeStatus.ACTIVE, 3000)
    report = m.heard_status("beta", 3.5, NodeStatus.ACTIVE, 3000)
    assert report.overdue
    assert [(c.old, c.new) for c in report.changes] == [
        (NodeStatus.ACTIVE, NodeStatus.DEAD),
        (NodeStatus.DEAD, NodeStatus.ACTIVE),
    ]
    assert report.changes[0].reason == "Late heartbeat: Node beta: interval 3500 ms"


def test_returning_dead_node_is_not_reported_late() -> None:
    m = members(start=0.0)
    m.declare_comms_up()
    m.heard_status("beta", 0.0, NodeStatus.ACTIVE)
    m.expire(3.0)
    report = m.heard_status("beta", 30.0, NodeStatus.UP)
    assert report.interval_ms is None and not report.late
    assert [(c.old, c.new) for c in report.changes] == [(NodeStatus.DEAD, NodeStatus.UP)]
    assert report.changes[0].reason == "node beta returned: status up"


@pytest.mark.parametrize("announced", [None, NodeStatus.DEAD])
def test_unknown_status_value_keeps_node_up(announced: NodeStatus | None) -> None:
    m = members()
    m.heard_status("beta", 11.0, announced)
    assert m.node("beta").status is NodeStatus.UP


def test_comms_condition_needs_every_peer_heard_or_dead() -> None:
    m = members(start=0.0)
    m.heard_packet("beta", "eth0", 0.5)
    m.heard_status("198.51.100.1", 0.5, NodeStatus.PING)
    assert not m.all_heard_or_dead()
    m.expire(6.0)
    assert m.all_heard_or_dead()
    assert m.node("gamma").status is NodeStatus.DEAD


def test_next_deadline_is_the_earliest_node_or_link_deadline() -> None:
    m = members(start=0.0)
    m.declare_comms_up()
    for name in ("beta", "gamma"):
        m.heard_status(name, 1.0, NodeStatus.ACTIVE, 3000)
    m.heard_status("198.51.100.1", 1.0, NodeStatus.PING)
    m.heard_packet("beta", "eth0", 0.5)
    assert m.next_deadline() == 3.5


def test_a_reload_that_shortens_deadping_gives_the_ping_node_one_new_dead_time() -> None:
    # deadping 4 s -> 1 s, 3 s after the last echo: under the new timing the node has
    # been silent too long already, but that silence was measured against the old one.
    m = members(start=0.0)
    m.declare_comms_up()
    m.heard_status("198.51.100.1", 1.0, NodeStatus.PING)
    m.heard_packet("198.51.100.1", "198.51.100.1", 1.0)
    m.retime(dataclasses.replace(TIMING, deadping=1000), now=4.0)
    assert m.node_deadline("198.51.100.1") == 5.0
    assert m.link_deadline("198.51.100.1", "198.51.100.1") == 5.0
    assert [e for e in m.expire(4.999) if e.node == "198.51.100.1"] == []
    report = m.heard_status("198.51.100.1", 4.5, NodeStatus.PING)  # the next echo
    assert not report.overdue and report.changes == ()
    assert m.node_deadline("198.51.100.1") == 5.5  # from then on, the new deadping


def test_a_reload_that_shortens_deadping_still_declares_a_silent_ping_node_dead() -> None:
    m = members(start=0.0)
    m.declare_comms_up()
    m.heard_status("198.51.100.1", 1.0, NodeStatus.PING)
    m.retime(dataclasses.replace(TIMING, deadping=1000), now=4.0)
    assert [e for e in m.expire(4.999) if e.node == "198.51.100.1"] == []
    dead = [e for e in m.expire(5.0) if isinstance(e, NodeStatusChanged)]
    assert [(e.node, e.new) for e in dead] == [("198.51.100.1", NodeStatus.DEAD)]


def test_a_reload_that_lengthens_a_dead_time_changes_no_deadline_but_that_one() -> None:
    m = members(start=0.0)
    m.declare_comms_up()
    m.heard_status("beta", 1.0, NodeStatus.UP)
    m.heard_status("198.51.100.1", 1.0, NodeStatus.PING)
    m.retime(dataclasses.replace(TIMING, deadtime=6000), now=2.0)
    assert m.node_deadline("beta") == 7.0  # last status + the new deadtime
    assert m.node_deadline("198.51.100.1") == 5.0  # deadping unchanged
