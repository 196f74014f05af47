"""Failover policy as pure logic: who takes, keeps, releases and hands back each group,
in a fake cluster of Scheduler instances (scheduler_harness)."""

from __future__ import annotations

import pytest
from scheduler_harness import Cluster, make_config

from pulse.config.model import AutoFailback
from pulse.failover.policy import (
    RQSTDELAY,
    Acquire,
    Action,
    Decision,
    GroupState,
    Release,
    Scheduler,
    Send,
    StandbyRefused,
)
from pulse.wire.message import Message


def two_nodes(policy: AutoFailback = AutoFailback.ON) -> Cluster:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"}, policy))
    cluster.start("prime")
    cluster.start("calc")
    return cluster


def test_each_node_takes_its_own_group_when_both_start() -> None:
    cluster = two_nodes()
    assert cluster.holders() == {"web": "prime", "db": "calc"}


def test_lone_node_takes_every_group_after_comms_up() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"}))
    cluster.start("prime")
    assert cluster.holders() == {"web": "prime", "db": "prime"}


def test_survivor_takes_over_dead_nodes_group_with_reason() -> None:
    cluster = two_nodes()
    cluster.now = 30.0
    cluster.kill("prime")
    assert cluster.holders() == {"web": "calc", "db": "calc"}
    assert "holding web: took over web: prime dead at 21:33:05" in cluster.decisions("calc")


def test_auto_failback_on_returns_group_to_preferred_node() -> None:
    cluster = two_nodes(AutoFailback.ON)
    cluster.kill("prime")
    cluster.now = 40.0
    cluster.start("prime")
    assert cluster.holders() == {"web": "prime", "db": "calc"}
    assert "released web: failing web back to prime: auto_failback on" in cluster.decisions("calc")


def test_auto_failback_legacy_also_fails_back() -> None:
    cluster = two_nodes(AutoFailback.LEGACY)
    cluster.kill("prime")
    cluster.start("prime")
    assert cluster.holders() == {"web": "prime", "db": "calc"}


def test_auto_failback_off_keeps_group_on_survivor() -> None:
    cluster = two_nodes(AutoFailback.OFF)
    cluster.kill("prime")
    cluster.start("prime")
    assert cluster.holders() == {"web": "calc", "db": "calc"}
    assert "not failing back web to prime: auto_failback off" in cluster.decisions("calc")


def test_three_nodes_chain_in_node_order_and_back() -> None:
    # The three-node Apache cluster: server1 -> server2 -> server3, back to server1 as it returns.
    cluster = Cluster(make_config(["server1", "server2", "server3"], {"vip": "server1"}))
    for name in ("server1", "server2", "server3"):
        cluster.start(name)
    assert cluster.holders() == {"vip": "server1"}
    cluster.kill("server1")
    assert cluster.holders() == {"vip": "server2"}
    cluster.kill("server2")
    assert cluster.holders() == {"vip": "server3"}
    cluster.start("server2")
    assert cluster.holders() == {"vip": "server2"}  # auto_failback on: earlier in the order
    cluster.start("server1")
    assert cluster.holders() == {"vip": "server1"}


def test_group_of_a_starting_peer_is_left_for_it() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"}))
    cluster.start("prime")
    # prime alone took db; calc starts: db goes back to calc (auto_failback on), web stays.
    cluster.start("calc")
    assert cluster.holders() == {"web": "prime", "db": "calc"}


def test_failed_start_offers_group_to_the_peer() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}))
    cluster.fail_start.add(("prime", "web"))
    cluster.start("prime")
    cluster.start("calc")
    assert cluster.holders() == {"web": "calc"}
    assert any("start of web failed" in d for d in cluster.decisions("prime"))


def test_failed_stop_leaves_group_claimed_and_failed() -> None:
    cluster = two_nodes()
    cluster.fail_stop.add(("prime", "web"))
    cluster.apply("prime", cluster.nodes["prime"].set_standby("local", cluster.now))
    assert cluster.nodes["prime"].mine["web"].state is GroupState.FAILED
    assert cluster.holders()["web"] == "prime"  # nobody else starts it
    assert any("FAILED here: stop failed" in d for d in cluster.decisions("prime"))


def test_graceful_stop_hands_over_before_the_node_is_gone() -> None:
    cluster = two_nodes()
    cluster.now = 5.0
    cluster.stop("prime")
    assert cluster.holders() == {"web": "calc", "db": "calc"}
    assert (5.0, "calc", "web") in cluster.acquisitions()


def test_standby_local_moves_own_groups_and_takeover_brings_them_back() -> None:
    cluster = two_nodes()
    cluster.apply("prime", cluster.nodes["prime"].set_standby("local", cluster.now))
    assert cluster.holders() == {"web": "calc", "db": "calc"}
    cluster.apply("prime", cluster.nodes["prime"].takeover("local", cluster.now))
    assert cluster.holders() == {"web": "prime", "db": "calc"}


def test_standby_all_then_takeover_all() -> None:
    cluster = two_nodes()
    cluster.apply("calc", cluster.nodes["calc"].set_standby("all", cluster.now))
    assert cluster.holders() == {"web": "prime", "db": "prime"}
    cluster.apply("calc", cluster.nodes["calc"].takeover("all", cluster.now))
    assert cluster.holders() == {"web": "calc", "db": "calc"}


def test_takeover_on_survivor_keeps_groups_after_failback_would_apply() -> None:
    cluster = two_nodes(AutoFailback.ON)
    cluster.apply("calc", cluster.nodes["calc"].takeover("foreign", cluster.now))
    assert cluster.holders() == {"web": "calc", "db": "calc"}


def test_standby_with_no_peer_is_refused() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}))
    cluster.start("prime")
    with pytest.raises(StandbyRefused):
        cluster.nodes["prime"].set_standby("all", cluster.now)
    assert cluster.holders() == {"web": "prime"}


def test_silent_peer_lets_us_become_stable_after_rqstdelay() -> None:
    config = make_config(["prime", "calc"], {"web": "prime"})
    sched = Scheduler(config=config, local="prime", now=0.0)
    sched.node_status("calc", True, 0.0)  # alive but never reports its resources
    actions = sched.comms_up(0.0)
    assert not any(isinstance(a, Acquire) for a in actions)
    assert sched.next_deadline() == RQSTDELAY
    assert sched.tick(RQSTDELAY - 0.001) == []
    actions = sched.tick(RQSTDELAY)
    assert [a for a in actions if isinstance(a, Acquire)] == [
        Acquire("web", "acquiring web: this is its preferred node")
    ]


def test_resource_announcement_lists_exact_groups_for_pulse_peers() -> None:
    cluster = two_nodes()
    sends = [
        a.message
        for _, n, a in cluster.journal
        if n == "prime" and isinstance(a, Send) and a.message.type == "resource"
    ]
    last = sends[-1]
    assert last.get("pulse_hold") == "web"
    assert last.get("rsc_hold") == "local"
    assert last.get("isstable") == "1"


def test_heartbeat_peer_classes_are_understood() -> None:
    from pulse.wire.message import Message

    config = make_config(["prime", "calc"], {"web": "prime", "db": "calc"})
    sched = Scheduler(config=config, local="prime", now=0.0)
    sched.node_status("calc", True, 0.0)
    sched.comms_up(0.0)
    msg = Message.of(
        ("t", "resource"),
        ("rsc_hold", "all"),
        ("rtype", "full"),
        ("isstable", "1"),
        ("src", "calc"),
    )
    actions = sched.message(msg, 0.0)
    assert sched.holder("web") == "calc"
    assert not any(isinstance(a, Acquire) for a in actions)  # web is held by the peer


def test_after_a_healed_partition_only_one_node_keeps_a_doubly_held_group() -> None:
    from pulse.wire.message import Message

    for policy in (AutoFailback.ON, AutoFailback.OFF):
        cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}, policy))
        cluster.check_safety = False
        cluster.start("prime")
        cluster.start("calc")
        # Partition: each side believes the other dead and runs web.
        cluster.cut("prime", "calc")
        cluster.apply("calc", cluster.nodes["calc"].node_status("prime", False, 1.0))
        cluster.apply("prime", cluster.nodes["prime"].node_status("calc", False, 1.0))
        assert cluster.nodes["calc"].mine["web"].state is GroupState.RUNNING
        # Healed: each hears the other's announcement again.
        cluster.heal()
        for a, b in (("prime", "calc"), ("calc", "prime")):
            cluster.apply(a, cluster.nodes[a].node_status(b, True, 2.0))
        for a, b in (("prime", "calc"), ("calc", "prime")):
            msg = cluster.nodes[b]._resource_message().with_field("src", b)
            assert isinstance(msg, Message)
            cluster.apply(a, cluster.nodes[a].message(msg, 2.0))
        assert cluster.holders() == {"web": "prime"}, policy


def test_standby_node_still_takes_groups_when_the_other_node_leaves() -> None:
    cluster = two_nodes()
    cluster.apply("prime", cluster.nodes["prime"].set_standby("all", cluster.now))
    assert cluster.holders() == {"web": "calc", "db": "calc"}
    cluster.stop("calc")
    assert cluster.holders() == {"web": "prime", "db": "prime"}


def test_a_node_whose_start_failed_is_not_a_last_resort() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}))
    cluster.fail_start.update({("prime", "web"), ("calc", "web")})
    cluster.start("prime")
    cluster.start("calc")
    assert cluster.holders() == {"web": None}
    assert "web cannot run anywhere: no eligible node" in cluster.decisions("calc")


def test_a_healed_partition_is_settled_when_the_peers_report_arrives_before_its_heartbeat() -> None:
    for policy in (AutoFailback.ON, AutoFailback.OFF):
        cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}, policy))
        cluster.check_safety = False
        cluster.start("prime")
        cluster.start("calc")
        prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
        cluster.cut("prime", "calc")
        cluster.apply("calc", calc.node_status("prime", False, 1.0))
        cluster.apply("prime", prime.node_status("calc", False, 1.0))
        assert calc.mine["web"].state is GroupState.RUNNING
        # Healed: prime hears calc first and announces what it holds; calc gets that
        # announcement while it still believes prime dead, then prime's heartbeat.
        cluster.heal()
        cluster.apply("prime", prime.node_status("calc", True, 2.0))
        assert calc.peers["prime"].hold == frozenset({"web"})
        cluster.apply("calc", calc.node_status("prime", True, 2.2))
        assert cluster.holders() == {"web": "prime"}, policy
        assert calc.mine["web"].state is GroupState.STOPPED


def test_failback_waits_until_the_returning_node_has_finished_starting() -> None:
    from pulse.wire.message import Message

    cluster = two_nodes(AutoFailback.ON)
    cluster.kill("prime")
    calc = cluster.nodes["calc"]
    assert calc.mine["web"].state is GroupState.RUNNING
    # prime boots again: alive, then "starting"; calc keeps web meanwhile.
    actions = calc.node_status("prime", True, 50.0)
    actions += calc.message(Message.of(("t", "starting"), ("src", "prime")), 50.0)
    assert not any(isinstance(a, Release) for a in actions)
    assert "keeping web until prime has finished starting" in [
        a.text for a in actions if isinstance(a, Decision)
    ]
    # prime reports it is stable (and holds nothing): now web goes back.
    stable = Message.of(
        ("t", "resource"), ("rsc_hold", "none"), ("rtype", "full"), ("isstable", "1"),
        ("pulse_hold", " "), ("pulse_standby", " "), ("pulse_failed", " "),
        ("pulse_leaving", "0"), ("src", "prime"),
    )  # fmt: skip
    actions = calc.message(stable, 50.5)
    assert [a.group for a in actions if isinstance(a, Release)] == ["web"]


def test_a_resource_report_arriving_before_the_first_heartbeat_keeps_us_off_its_groups() -> None:
    # calc starts while prime runs web; prime's resource report overtakes its status.
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}))
    cluster.start("prime")
    calc = Scheduler(config=cluster.config, local="calc", now=1.0)
    report = cluster.nodes["prime"]._resource_message().with_field("src", "prime")
    actions = calc.message(report, 1.0)  # prime not yet known alive from a heartbeat
    actions += calc.comms_up(1.0)
    assert not any(isinstance(a, Acquire) for a in actions)
    assert calc.holder("web") == "prime"


def test_peers_heard_before_their_first_heartbeat_are_waited_for_at_comms_up() -> None:
    config = make_config(["prime", "calc"], {"web": "prime"})
    calc = Scheduler(config=config, local="calc", now=0.0)
    actions = calc.comms_up(0.0, peers=["prime"])
    assert not any(isinstance(a, Acquire) for a in actions)
    assert [a.message.type for a in actions if isinstance(a, Send)] == ["starting"]
    assert calc.awaiting == {"prime"}


# ----------------------------------------------------------------------------- Heartbeat
# A Heartbeat peer moves groups only through its standby exchange (ask_resources).


def hb_msg(*fields: tuple[str, str]) -> Message:
    return Message.of(*fields, ("src", "hb1"))


def sends(actions: list[Action]) -> list[tuple[tuple[str, str], ...]]:
    """The messages among *actions*, as (name, value) pairs without pulse's own fields."""
    return [
        tuple(
            (f.name, f.value.decode()) for f in a.message.fields if not f.name.startswith("pulse_")
        )
        for a in actions
        if isinstance(a, Send)
    ]


def mixed_pulse_node() -> Scheduler:
    config = make_config(["hb1", "pulse1"], {"hbvip": "hb1", "pvip": "pulse1"})
    return Scheduler(config=config, local="pulse1", now=0.0)


def pulse_holding_everything_when_heartbeat_returns() -> Scheduler:
    sched = mixed_pulse_node()
    for a in sched.comms_up(0.0):  # alone: takes both groups
        if isinstance(a, Acquire):
            sched.done(a.group, 0.0, ok=True)
    sched.node_status("hb1", True, 5.0)
    sched.message(hb_msg(("t", "starting")), 5.0)
    return sched


def test_heartbeat_auto_failback_is_answered_with_other_and_taken_after_its_done() -> None:
    sched = mixed_pulse_node()
    sched.node_status("hb1", True, 0.0)
    assert sends(sched.comms_up(0.0)) == [(("t", "starting"),)]
    actions = sched.message(
        hb_msg(("t", "resource"), ("rsc_hold", "all"), ("rtype", "full"), ("isstable", "1")), 0.1
    )
    assert not any(isinstance(a, Acquire) for a in actions)  # Heartbeat holds pvip
    assert sends(actions) == [
        (("t", "resource"), ("rsc_hold", "none"), ("rtype", "full"), ("isstable", "1"))
    ]

    actions = sched.message(
        hb_msg(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "me")), 0.2
    )
    assert sends(actions) == [(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "other"))]

    # Heartbeat announces it is giving up (not a full report), then releases.
    actions = sched.message(
        hb_msg(("t", "resource"), ("rsc_hold", "local"), ("isstable", "0"), ("info", "standby")),
        0.3,
    )
    assert not any(isinstance(a, (Acquire, Send)) for a in actions)
    actions = sched.message(
        hb_msg(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "done")), 1.0
    )
    assert [a for a in actions if isinstance(a, Acquire)] == [
        Acquire("pvip", "acquiring pvip: this is its preferred node")
    ]
    assert sends(actions) == []  # done only once acquired

    actions = sched.done("pvip", 1.5, ok=True)
    assert sends(actions) == [
        (("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "done")),
        (("t", "resource"), ("rsc_hold", "local"), ("rtype", "full"), ("isstable", "1")),
    ]
    assert sched.exchange is None
    assert sched.holder("pvip") == "pulse1"
    assert sched.holder("hbvip") == "hb1"


def test_pulse_gives_a_returning_heartbeat_node_its_group_through_the_standby_exchange() -> None:
    sched = pulse_holding_everything_when_heartbeat_returns()
    actions = sched.message(
        hb_msg(("t", "resource"), ("rsc_hold", "none"), ("rtype", "full"), ("isstable", "1")), 6.0
    )
    assert not any(isinstance(a, Release) for a in actions)
    assert sends(actions) == [(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "me"))]

    actions = sched.message(
        hb_msg(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "other")), 6.1
    )
    assert sends(actions) == [
        (
            ("t", "resource"),
            ("rsc_hold", "local"),
            ("rtype", "full"),
            ("isstable", "0"),
            ("info", "standby"),
        )
    ]
    assert [a.group for a in actions if isinstance(a, Release)] == ["hbvip"]

    actions = sched.done("hbvip", 6.5, ok=True)
    assert sends(actions) == [(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "done"))]

    actions = sched.message(
        hb_msg(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "done")), 7.0
    )
    assert Decision("Other node completed standby takeover of foreign resources.") in actions
    assert sends(actions) == [
        (("t", "resource"), ("rsc_hold", "local"), ("rtype", "full"), ("isstable", "1"))
    ]
    assert not any(isinstance(a, Acquire) for a in actions)
    assert sched.holder("hbvip") == "hb1"
    assert sched.mine["pvip"].state is GroupState.RUNNING


def test_unanswered_standby_request_is_cancelled_after_10s_and_asked_again() -> None:
    sched = pulse_holding_everything_when_heartbeat_returns()
    sched.message(
        hb_msg(("t", "resource"), ("rsc_hold", "none"), ("rtype", "full"), ("isstable", "1")), 6.0
    )
    assert sched.next_deadline() == 16.0
    assert sched.tick(15.9) == []
    actions = sched.tick(16.0)
    assert Decision("No reply to standby request. Standby request cancelled.") in actions
    assert sends(actions) == []
    assert sched.mine["hbvip"].state is GroupState.RUNNING  # kept: nobody took it
    assert sched.next_deadline() == 17.0
    assert sends(sched.tick(17.0)) == [
        (("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "me"))
    ]


def test_a_second_standby_request_during_an_exchange_is_ignored() -> None:
    sched = pulse_holding_everything_when_heartbeat_returns()
    sched.message(
        hb_msg(("t", "resource"), ("rsc_hold", "none"), ("rtype", "full"), ("isstable", "1")), 6.0
    )
    actions = sched.message(
        hb_msg(("t", "ask_resources"), ("rsc_hold", "local"), ("info", "me")), 6.1
    )
    assert actions == [Decision("Standby in progress- new request from hb1 ignored")]


def test_heartbeat_node_dying_mid_exchange_leaves_its_group_to_us() -> None:
    sched = pulse_holding_everything_when_heartbeat_returns()
    sched.message(
        hb_msg(("t", "resource"), ("rsc_hold", "none"), ("rtype", "full"), ("isstable", "1")), 6.0
    )
    sched.message(hb_msg(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "other")), 6.1)
    sched.done("hbvip", 6.5, ok=True)
    actions = sched.node_status("hb1", False, 9.0)
    assert sched.exchange is None
    assert [a.group for a in actions if isinstance(a, Acquire)] == ["hbvip"]


def test_hb_standby_on_the_heartbeat_node_hands_us_all_and_it_keeps_refusing_them() -> None:
    sched = mixed_pulse_node()
    sched.node_status("hb1", True, 0.0)
    sched.comms_up(0.0)
    sched.message(
        hb_msg(("t", "resource"), ("rsc_hold", "local"), ("rtype", "full"), ("isstable", "1")), 0.1
    )
    sched.done("pvip", 0.2, ok=True)
    sched.message(hb_msg(("t", "ask_resources"), ("rsc_hold", "all"), ("info", "me")), 1.0)
    actions = sched.message(
        hb_msg(("t", "ask_resources"), ("rsc_hold", "all"), ("info", "done")), 2.0
    )
    assert [a.group for a in actions if isinstance(a, Acquire)] == ["hbvip"]
    actions = sched.done("hbvip", 2.5, ok=True)
    assert sends(actions)[0] == (("t", "ask_resources"), ("rsc_hold", "all"), ("info", "done"))
    assert sends(actions)[1][:2] == (("t", "resource"), ("rsc_hold", "all"))
    assert not any(isinstance(a, Release) for a in actions)  # no failback to a standby node


def test_pulse_peers_never_use_the_heartbeat_standby_exchange() -> None:
    cluster = two_nodes()
    cluster.kill("prime")
    cluster.start("prime")
    assert cluster.holders() == {"web": "prime", "db": "calc"}
    assert not any(
        isinstance(a, Send) and a.message.type == "ask_resources" for _, _, a in cluster.journal
    )


def test_heartbeats_standby_report_before_its_release_does_not_start_the_group_early() -> None:
    sched = mixed_pulse_node()
    sched.node_status("hb1", True, 0.0)
    sched.comms_up(0.0)
    sched.message(
        hb_msg(("t", "resource"), ("rsc_hold", "foreign"), ("rtype", "full"), ("isstable", "1")),
        0.1,
    )
    sched.message(hb_msg(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "me")), 0.2)
    # Heartbeat holding nothing else reports rsc_hold=none, then runs its release.
    actions = sched.message(
        hb_msg(("t", "resource"), ("rsc_hold", "none"), ("isstable", "0"), ("info", "standby")), 0.3
    )
    assert not any(isinstance(a, Acquire) for a in actions)
    assert Decision("waiting for hb1 to release pvip (standby)", "pvip") in actions
    actions = sched.message(
        hb_msg(("t", "ask_resources"), ("rsc_hold", "foreign"), ("info", "done")), 0.8
    )
    assert [a.group for a in actions if isinstance(a, Acquire)] == ["pvip"]
