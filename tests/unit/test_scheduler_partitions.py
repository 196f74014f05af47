"""Partitions that only one side saw: every heal ends with one holder, the keeper first.

The story behind these tests (issue 9): prime's link was down for 1.2 s; calc declared
prime dead and took its VIP; prime only saw a late heartbeat, kept the VIP and never
said anything, and calc waited for ever for prime "to finish starting". Both ran the
group until someone noticed. docs/failover.md ("A healed partition") states the rules
proven here.
"""

from __future__ import annotations

from scheduler_harness import Cluster, make_config

from pulse.config.model import AutoFailback
from pulse.failover.policy import Acquire, GroupState, Refresh, Release, Send


def healthy(policy: AutoFailback = AutoFailback.ON) -> Cluster:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}, policy))
    cluster.start("prime")
    cluster.start("calc")
    assert cluster.holders() == {"web": "prime"}
    cluster.check_safety = False  # the tests partition the cluster on purpose
    return cluster


def events_after(cluster: Cluster, mark: int) -> list[tuple[str, object]]:
    return [(name, action) for _, name, action in cluster.journal[mark:]]


def test_a_death_only_one_side_saw_heals_to_one_holder_with_the_keeper_announcing_first() -> None:
    for policy in (AutoFailback.ON, AutoFailback.OFF):
        cluster = healthy(policy)
        prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
        cluster.cut("prime", "calc")
        cluster.now = 1.0
        # calc declares prime dead; prime never declares calc dead (a late heartbeat).
        cluster.apply("calc", calc.node_status("prime", False, cluster.now))
        assert calc.mine["web"].state is GroupState.RUNNING
        assert prime.mine["web"].state is GroupState.RUNNING

        cluster.heal()
        cluster.now = 1.2
        mark = len(cluster.journal)
        cluster.apply("calc", calc.node_status("prime", True, cluster.now))

        assert cluster.holders() == {"web": "prime"}, policy
        assert calc.peers["prime"].stable, "prime reported what it holds: it is stable"
        story = events_after(cluster, mark)
        refresh = story.index(
            ("prime", Refresh("web", "web also runs on calc: announcing it here again first"))
        )
        release = next(
            i for i, (n, a) in enumerate(story) if n == "calc" and isinstance(a, Release)
        )
        assert refresh < release, "calc released before prime announced the VIP again"


def test_the_returning_node_is_asked_what_it_holds_once_and_answers_once() -> None:
    cluster = healthy()
    calc = cluster.nodes["calc"]
    cluster.cut("prime", "calc")
    cluster.apply("calc", calc.node_status("prime", False, 1.0))
    cluster.heal()
    mark = len(cluster.journal)
    cluster.apply("calc", calc.node_status("prime", True, 1.2))
    sends = [(n, a) for n, a in events_after(cluster, mark) if isinstance(a, Send)]
    asks = [n for n, a in sends if isinstance(a, Send) and a.message.get("pulse_rq") == "1"]
    assert asks == ["calc"]
    # prime answers the question, then says it keeps web, and calc reports its release:
    # a handful of messages, no ping-pong.
    assert len(sends) <= 6, sends


def test_heartbeats_dropped_one_way_settle_within_one_round_trip_of_the_heal() -> None:
    # calc stops hearing prime (an nft rule at calc's ingress); prime still hears calc.
    cluster = healthy()
    prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
    cluster.cut("prime", "calc", both=False)
    cluster.apply("calc", calc.node_status("prime", False, 1.0))
    # prime heard calc claim web: it keeps it (it is its preferred node) and says so,
    # but calc cannot hear that yet.
    assert prime.mine["web"].state is GroupState.RUNNING
    assert "web" in prime.keeping
    assert calc.mine["web"].state is GroupState.RUNNING
    cluster.heal()
    cluster.apply("calc", calc.node_status("prime", True, 2.0))
    assert cluster.holders() == {"web": "prime"}


def test_a_releaser_waits_at_most_one_keepalive_for_a_silent_keeper() -> None:
    cluster = healthy()
    prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
    cluster.cut("prime", "calc")
    cluster.apply("calc", calc.node_status("prime", False, 1.0))
    # prime's report reaches calc (it claims web) but nothing after it: prime's own
    # re-announcement is lost.
    report = prime._resource_message().with_field("src", "prime")
    cluster.apply("calc", calc.message(report, 1.5))
    assert calc.mine["web"].state is GroupState.RUNNING, "waits for prime's announcement"
    keepalive = cluster.config.timing.keepalive / 1000
    assert calc.next_deadline() == 1.5 + keepalive
    cluster.now = 1.5 + keepalive
    cluster.apply("calc", calc.tick(cluster.now))
    assert calc.mine["web"].state is GroupState.STOPPED


def test_a_keeper_that_is_still_starting_the_group_announces_it_once_it_runs() -> None:
    cluster = healthy()
    prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
    cluster.cut("prime", "calc")
    cluster.apply("calc", calc.node_status("prime", False, 1.0))
    cluster.heal()
    # prime is mid-start of web (restarting it, say) when calc's claim arrives.
    prime.mine["web"].state = GroupState.STARTING
    cluster.apply("calc", calc.node_status("prime", True, 1.2))
    assert calc.mine["web"].state is GroupState.RUNNING
    assert not any(isinstance(a, Refresh) for _, n, a in cluster.journal if n == "prime")
    cluster.apply("prime", prime.done("web", 1.3, ok=True))
    assert cluster.holders() == {"web": "prime"}


def test_no_group_is_acquired_anew_while_a_double_claim_is_settled() -> None:
    cluster = Cluster(make_config(["a", "b", "c"], {"web": "a", "db": "b"}))
    for name in ("a", "b", "c"):
        cluster.start(name)
    cluster.check_safety = False
    # c loses a (both ways) and takes web; b still sees a.
    cluster.cut("a", "c")
    cluster.apply("c", cluster.nodes["c"].node_status("a", False, 1.0))
    cluster.heal()
    mark = len(cluster.journal)
    cluster.apply("c", cluster.nodes["c"].node_status("a", True, 1.2))
    assert cluster.holders() == {"web": "a", "db": "b"}
    assert not [a for n, a in events_after(cluster, mark) if isinstance(a, Acquire)]


def test_a_node_that_is_cut_off_keeps_its_groups_and_takes_nothing_over() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"}))
    cluster.start("prime")
    cluster.start("calc")
    cluster.check_safety = False
    prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
    # calc's cable is out: its sends fail, then it declares prime dead.
    cluster.cut("prime", "calc")
    cluster.apply("calc", calc.set_cut_off(True, 1.0, detail="eth0: ENETUNREACH"))
    cluster.apply("calc", calc.node_status("prime", False, 1.5))
    assert calc.mine["web"].state is GroupState.STOPPED, "a cut-off node takes nothing over"
    assert calc.mine["db"].state is GroupState.RUNNING, "and keeps what it runs"
    assert calc.view().cut_off
    # prime, whose link works, takes db over.
    cluster.apply("prime", prime.node_status("calc", False, 1.5))
    assert prime.mine["db"].state is GroupState.RUNNING
    # The cable is back: calc is no longer cut off, hears prime, and db settles on calc
    # (its preferred node), web stays on prime.
    cluster.heal()
    cluster.apply("calc", calc.set_cut_off(False, 3.0))
    cluster.apply("calc", calc.node_status("prime", True, 3.0))
    cluster.apply("prime", prime.node_status("calc", True, 3.0))
    assert cluster.holders() == {"web": "prime", "db": "calc"}


def test_a_node_still_cut_off_when_its_peer_dies_takes_over_once_a_link_works() -> None:
    cluster = healthy()
    calc = cluster.nodes["calc"]
    cluster.apply("calc", calc.set_cut_off(True, 1.0))
    cluster.kill("prime")  # prime really dies while calc's cable is out
    assert calc.mine["web"].state is GroupState.STOPPED
    cluster.apply("calc", calc.set_cut_off(False, 2.0))
    assert calc.mine["web"].state is GroupState.RUNNING
