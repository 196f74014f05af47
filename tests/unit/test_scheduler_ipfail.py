"""The built-in ipfail: groups go to the node that reaches more ping nodes.

Pure schedulers on the fake bus of :mod:`scheduler_harness`; keepalive is 1 s, so a
give-up waits exactly 2 s.
"""

from __future__ import annotations

from scheduler_harness import Cluster, make_config

from pulse.config.model import AutoFailback
from pulse.scheduler import Release, Send
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
    for bad in ("-1", "x", "", "99999"):
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
