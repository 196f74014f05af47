"""The built-in ipfail: groups go to the node that reaches more ping nodes.

Pure schedulers on the fake bus of :mod:`scheduler_harness`; keepalive is 1 s, so a
give-up waits exactly 2 s.
"""

from __future__ import annotations

import pytest
from scheduler_harness import Cluster, make_config

from pulse.config.model import AutoFailback
from pulse.failover.policy import Acquire, Action, Release, Scheduler, Send
from pulse.wire.message import Message

ROUTER = "198.51.100.254"
UPLINK = "203.0.113.1"
DELAY = 2.0  # twice the default keepalive of 1 s


def cluster_with_ping(
    policy: AutoFailback = AutoFailback.ON,
    *,
    ping: tuple[str, ...] = (ROUTER,),
    ipfail: bool = True,
    nodes: tuple[str, ...] = ("prime", "calc"),
) -> Cluster:
    groups = {"web": "prime", "db": "calc"}
    cluster = Cluster(make_config(nodes, groups, policy, ping=ping, ipfail=ipfail))
    for name in nodes:
        cluster.start(name)
    for name in nodes:
        for host in ping:
            see(cluster, name, host, True)
    cluster.journal.clear()  # start-up moves (the first node holds both at first)
    return cluster


def see(cluster: Cluster, node: str, host: str, up: bool) -> None:
    cluster.apply(node, cluster.nodes[node].ping_status(host, up, cluster.now))


def releases(cluster: Cluster) -> list[tuple[float, str, str]]:
    return [(t, n, a.group) for t, n, a in cluster.journal if isinstance(a, Release)]


def test_node_losing_its_ping_node_hands_its_groups_over_after_two_keepalives() -> None:
    cluster = cluster_with_ping()
    assert cluster.holders() == {"web": "prime", "db": "calc"}
    cluster.now = 10.0
    see(cluster, "prime", ROUTER, False)
    cluster.advance(DELAY - 0.001)
    assert cluster.holders() == {"web": "prime", "db": "calc"}
    cluster.advance(0.001)
    assert cluster.holders() == {"web": "calc", "db": "calc"}
    assert releases(cluster) == [(12.0, "prime", "web")]
    assert any(
        "Giving up because we have less visible ping nodes (0; calc: 1)" in d
        for d in cluster.decisions("prime")
    )


def test_ping_node_dying_for_both_nodes_within_the_delay_moves_nothing() -> None:
    cluster = cluster_with_ping()
    cluster.now = 10.0
    see(cluster, "prime", ROUTER, False)
    cluster.advance(0.9)  # the other node notices up to a keepalive later
    see(cluster, "calc", ROUTER, False)
    cluster.advance(10.0)
    assert cluster.holders() == {"web": "prime", "db": "calc"}
    assert releases(cluster) == []


def test_auto_failback_on_brings_the_groups_home_when_the_ping_node_returns() -> None:
    cluster = cluster_with_ping(AutoFailback.ON)
    see(cluster, "prime", ROUTER, False)
    cluster.advance(DELAY)
    assert cluster.holders()["web"] == "calc"
    cluster.advance(5.0)
    see(cluster, "prime", ROUTER, True)
    assert cluster.holders() == {"web": "prime", "db": "calc"}
    assert "ping node count is balanced (1): giveup ended" in cluster.decisions("prime")


def test_auto_failback_off_leaves_the_groups_with_the_better_connected_node() -> None:
    cluster = cluster_with_ping(AutoFailback.OFF)
    see(cluster, "prime", ROUTER, False)
    cluster.advance(DELAY)
    see(cluster, "prime", ROUTER, True)
    cluster.advance(10.0)
    assert cluster.holders() == {"web": "calc", "db": "calc"}


def test_a_better_connected_node_gives_nothing_up() -> None:
    cluster = cluster_with_ping()
    see(cluster, "prime", ROUTER, False)
    cluster.advance(DELAY)
    assert all(n == "prime" for _, n, _ in releases(cluster))
    assert cluster.nodes["calc"].view().connectivity is not None
    assert not cluster.nodes["calc"].view().connectivity.giving_up  # type: ignore[union-attr]


def test_giveup_is_soft_so_the_worse_connected_node_runs_everything_when_alone() -> None:
    cluster = cluster_with_ping()
    see(cluster, "prime", ROUTER, False)
    cluster.advance(DELAY)
    assert cluster.holders() == {"web": "calc", "db": "calc"}
    cluster.kill("calc")
    assert cluster.holders() == {"web": "prime", "db": "prime"}
    view = cluster.nodes["prime"].view().connectivity
    assert view is not None and not view.giving_up and view.peers == {}


def test_counts_are_compared_ping_node_by_ping_node_count() -> None:
    cluster = cluster_with_ping(ping=(ROUTER, UPLINK))
    see(cluster, "calc", UPLINK, False)  # calc 1, prime 2: calc gives db up
    cluster.advance(DELAY)
    assert cluster.holders() == {"web": "prime", "db": "prime"}
    see(cluster, "prime", ROUTER, False)  # 1 and 1: balanced, db goes home
    assert cluster.holders() == {"web": "prime", "db": "calc"}


def test_a_node_starting_before_its_first_ping_reply_keeps_its_groups() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"},
                                  ping=(ROUTER,), ipfail=True))  # fmt: skip
    cluster.start("prime")
    see(cluster, "prime", ROUTER, True)
    cluster.advance(30.0)
    cluster.start("calc")  # announces 0 ping nodes: it has not pinged yet
    cluster.advance(0.5)
    see(cluster, "calc", ROUTER, True)
    cluster.advance(10.0)
    assert cluster.holders() == {"web": "prime", "db": "calc"}
    assert not [d for d in cluster.decisions("calc") if d.startswith("Giving up")]


def test_a_peer_starting_later_learns_the_running_nodes_count() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"},
                                  ping=(ROUTER,), ipfail=True))  # fmt: skip
    cluster.start("prime")
    see(cluster, "prime", ROUTER, True)
    cluster.start("calc")
    view = cluster.nodes["calc"].view().connectivity
    assert view is not None and view.peers == {"prime": 1}


def test_three_nodes_the_worst_connected_gives_up_to_the_best() -> None:
    cluster = cluster_with_ping(nodes=("prime", "calc", "third"), ping=(ROUTER, UPLINK))
    see(cluster, "prime", ROUTER, False)
    see(cluster, "prime", UPLINK, False)
    see(cluster, "calc", UPLINK, False)
    cluster.advance(DELAY)
    # prime (0) and calc (1) both see third (2) as better connected.
    assert cluster.holders() == {"web": "third", "db": "third"}


def test_without_ipfail_ping_nodes_only_report_status() -> None:
    cluster = cluster_with_ping(ipfail=False)
    see(cluster, "prime", ROUTER, False)
    cluster.advance(60.0)
    assert cluster.holders() == {"web": "prime", "db": "calc"}
    assert not any(
        isinstance(a, Send) and a.message.type == "num_ping_nodes" for _, _, a in cluster.journal
    )
    assert cluster.nodes["prime"].view().connectivity is None


def test_malformed_ping_counts_are_ignored() -> None:
    cluster = cluster_with_ping()
    for bad in ("-1", "x", "", "99999", "\u00b2"):  # "²" passes str.isdigit()
        msg = Message.of(("t", "num_ping_nodes"), ("num_ping", bad), ("src", "calc"))
        cluster.apply("prime", cluster.nodes["prime"].message(msg, cluster.now))
    cluster.advance(10.0)
    view = cluster.nodes["prime"].view().connectivity
    assert view is not None and view.peers == {"calc": 1}
    assert releases(cluster) == []


def test_the_ping_count_goes_out_in_ipfails_own_message() -> None:
    cluster = cluster_with_ping()
    cluster.journal.clear()
    see(cluster, "prime", ROUTER, False)
    sent = [a.message for _, n, a in cluster.journal if n == "prime" and isinstance(a, Send)]
    assert [(m.get("t"), m.get("num_ping")) for m in sent] == [("num_ping_nodes", "0")]


def test_a_pulse_peers_lower_count_gets_no_answer() -> None:
    cluster = cluster_with_ping()
    cluster.journal.clear()
    see(cluster, "calc", ROUTER, False)
    sent = [a.message.type for _, n, a in cluster.journal if n == "prime" and isinstance(a, Send)]
    assert "you_are_dead" not in sent and "abort_giveup" not in sent


# ----------------------------------------------------------------------------- Heartbeat
# A Heartbeat node runs its own ipfail, which speaks to "the other node's ipfail" through
# Heartbeat's API: its messages carry from_id=ipfail, and it only gives up when told.


def hb_ipfail(*fields: tuple[str, str]) -> Message:
    return Message.of(*fields, ("src", "hb1"), ("dest", "pulse1"), ("from_id", "ipfail"))


def ipfail_sends(actions: list[Action]) -> list[tuple[str | None, str | None, str | None]]:
    return [
        (a.message.type, a.message.get("dest"), a.message.get("to_id"))
        for a in actions
        if isinstance(a, Send) and a.message.type in ("you_are_dead", "abort_giveup")
    ]


def mixed_with_ping(policy: AutoFailback = AutoFailback.ON) -> Scheduler:
    """pulse1 next to Heartbeat node hb1: each runs its own group, both reach the router."""
    config = make_config(
        ["hb1", "pulse1"], {"hbvip": "hb1", "pvip": "pulse1"}, policy, ping=(ROUTER,), ipfail=True
    )
    sched = Scheduler(config=config, local="pulse1", now=0.0)
    sched.node_status("hb1", True, 0.0)
    sched.comms_up(0.0)
    resource = Message.of(
        ("t", "resource"), ("rsc_hold", "local"), ("rtype", "full"), ("isstable", "1")
    )
    sched.message(resource.with_field("src", "hb1"), 0.1)
    sched.done("pvip", 0.2, ok=True)
    sched.ping_status(ROUTER, True, 0.3)
    return sched


def ask(info: str, what: str = "all") -> Message:
    return hb_ipfail(("t", "ask_resources"), ("rsc_hold", what), ("info", info))


def heartbeat_gave_up_to_us(policy: AutoFailback = AutoFailback.ON) -> Scheduler:
    """hb1's ipfail reported fewer ping nodes, was told so, and handed us its group."""
    sched = mixed_with_ping(policy)
    actions = sched.message(hb_ipfail(("t", "num_ping_nodes"), ("num_ping", "0")), 1.0)
    assert ipfail_sends(actions) == [("you_are_dead", "hb1", "ipfail")]
    assert not any(isinstance(a, Acquire | Release) for a in actions)
    # Its ipfail gives up 2 x keepalive later, through Heartbeat's standby exchange.
    sched.message(ask("me"), 3.0)
    actions = sched.message(ask("done"), 3.5)
    assert [a.group for a in actions if isinstance(a, Acquire)] == ["hbvip"]
    sched.done("hbvip", 3.6, ok=True)
    return sched


def test_heartbeats_ipfail_seeing_fewer_ping_nodes_is_told_to_give_up_and_we_take_over() -> None:
    sched = heartbeat_gave_up_to_us()
    assert sched.holder("hbvip") == "pulse1"
    assert sched.holder("pvip") == "pulse1"


@pytest.mark.parametrize("policy", [AutoFailback.ON, AutoFailback.OFF])
def test_heartbeats_ipfail_back_to_a_level_count_ends_its_giveup(policy: AutoFailback) -> None:
    sched = heartbeat_gave_up_to_us(policy)
    actions = sched.message(hb_ipfail(("t", "num_ping_nodes"), ("num_ping", "1")), 10.0)
    assert ipfail_sends(actions) == [("abort_giveup", "hb1", "ipfail")]
    if policy is AutoFailback.ON:  # handed back as ipfail does: standby exchange, foreign
        assert sends_info(actions)[-1] == ("ask_resources", "foreign", "me")
        assert sched.exchange is not None and sched.exchange.keys == {"hbvip"}
    else:  # left here
        assert sched.exchange is None
        assert sched.holder("hbvip") == "pulse1"


def sends_info(actions: list[Action]) -> list[tuple[str | None, str | None, str | None]]:
    sent = [a.message for a in actions if isinstance(a, Send)]
    return [(m.type, m.get("rsc_hold"), m.get("info")) for m in sent]


def test_you_are_dead_from_heartbeats_ipfail_starts_our_delayed_giveup() -> None:
    sched = mixed_with_ping()
    sched.ping_status(ROUTER, False, 5.0)  # we tell hb1 num_ping=0; its ipfail answers:
    sched.message(hb_ipfail(("t", "you_are_dead")), 5.1)
    assert sched.next_deadline() == 5.1 + DELAY
    assert sched.tick(5.0 + DELAY) == []
    assert sends_info(sched.tick(5.1 + DELAY)) == [("ask_resources", "local", "me")]
    view = sched.view().connectivity
    assert view is not None and view.giving_up and view.peers == {"hb1": 1}


def test_both_nodes_losing_the_router_cancels_the_giveup() -> None:
    sched = mixed_with_ping()
    sched.ping_status(ROUTER, False, 5.0)
    sched.message(hb_ipfail(("t", "you_are_dead")), 5.1)
    # hb1 loses it too, before our delay is over: its ipfail sends its count.
    actions = sched.message(hb_ipfail(("t", "num_ping_nodes"), ("num_ping", "0")), 5.5)
    assert ipfail_sends(actions) == [("abort_giveup", "hb1", "ipfail")]
    assert sched.tick(20.0) == []
    view = sched.view().connectivity
    assert view is not None and view.giveup_at is None and not view.giving_up


def test_abort_giveup_from_heartbeats_ipfail_means_level_counts() -> None:
    sched = mixed_with_ping()
    sched.ping_status(ROUTER, False, 5.0)
    sched.message(hb_ipfail(("t", "you_are_dead")), 5.1)
    sched.message(hb_ipfail(("t", "abort_giveup")), 5.5)
    assert sched.tick(20.0) == []
    view = sched.view().connectivity
    assert view is not None and view.peers == {"hb1": 0} and not view.giving_up
