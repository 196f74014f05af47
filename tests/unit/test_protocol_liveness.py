"""Liveness in memory: exact death times, initdead, warntime, links (docs/heartbeat.md#liveness)."""

from __future__ import annotations

from protocol_harness import (
    Wire,
    deaths,
    make_config,
    make_engine,
    of_type,
    peer_message,
    run_timers,
    status_message,
    two_nodes,
    uuid_of,
)

from pulse.protocol.engine import Engine
from pulse.protocol.events import (
    CommsUp,
    LinkStatus,
    LinkStatusChanged,
    Log,
    NodeLate,
    NodeStatus,
    NodeStatusChanged,
)
from pulse.wire.message import FieldType, Message


def test_two_nodes_go_active_together_at_start() -> None:
    wire = two_nodes()
    wire.run_until(1.0)
    for name in ("alpha", "beta"):
        view = wire.engines[name].view()
        assert view.comms_up and view.local_status is NodeStatus.ACTIVE
        assert [(n.name, n.status) for n in view.nodes] == [
            ("alpha", NodeStatus.ACTIVE),
            ("beta", NodeStatus.ACTIVE),
        ]


def test_peer_declared_dead_exactly_deadtime_after_its_last_status() -> None:
    wire = two_nodes(keepalive=1.0, deadtime=3.0)
    wire.run_until(10.5)
    wire.stop("beta")  # its last status went out at t=10.0 advertising dt=3000
    wire.run_until(20.0)
    assert deaths(wire, "alpha") == [("beta", 13.0)]
    assert (13.0, "node beta: is dead") in wire.logs("alpha")
    assert (13.0, "Link beta:eth0 dead.") in wire.logs("alpha")
    assert wire.engines["alpha"].view().local_status is NodeStatus.ACTIVE


def test_peer_uses_the_deadtime_it_advertised_not_ours() -> None:
    config = make_config(deadtime=3.0)
    alpha = make_engine(config, "alpha")
    alpha.start(0.0)
    alpha.receive(status_message("beta", 1, dt_ms=8000), "eth0", 0.0)
    alpha.receive(status_message("beta", 2, dt_ms=8000).with_field("t", "repnodes"), "eth0", 0.0)
    assert alpha.comms_up
    alpha.receive(status_message("beta", 3, dt_ms=8000), "eth0", 1.0)
    assert alpha.view().nodes[1].deadtime_ms == 8000
    for t in (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0):
        assert not of_type(alpha.tick(t), NodeStatusChanged)
    died = of_type(alpha.tick(9.0), NodeStatusChanged)
    assert [(c.node, c.new, c.at) for c in died] == [("beta", NodeStatus.DEAD, 9.0)]


def test_silent_peer_declared_dead_at_initdead_then_comms_up_alone() -> None:
    wire = Wire(make_config(deadtime=3.0, initdead=12.0), names=["alpha"])
    wire.run_until(20.0)
    assert deaths(wire, "alpha") == [("beta", 12.0)]
    assert [r.at for r in wire.outputs("alpha", CommsUp)] == [12.0]
    assert wire.sent("alpha", "reqnodes") == []
    active = [at for at, m in wire.sent("alpha", "status") if m.get("st") == "active"]
    assert active[0] == 12.0


def test_late_heartbeat_warned_at_the_interval_beyond_warntime() -> None:
    alpha = make_engine(make_config(deadtime=3.0, warntime=1.5), "alpha")
    alpha.start(0.0)
    alpha.receive(status_message("beta", 1), "eth0", 1.0)
    assert not of_type(alpha.receive(status_message("beta", 2), "eth0", 2.5), NodeLate)
    out = alpha.receive(status_message("beta", 3), "eth0", 4.25)
    assert of_type(out, NodeLate) == [NodeLate(node="beta", interval_ms=1750, at=4.25)]
    assert Log(level="WARN", text="Late heartbeat: Node beta: interval 1750 ms") in out


def test_a_status_found_after_our_own_stall_is_late_but_the_peer_never_bounces() -> None:
    alpha = make_engine(make_config(deadtime=3.0, initdead=6.0), "alpha")
    alpha.start(0.0)
    alpha.receive(status_message("beta", 1), "eth0", 1.0)
    # alpha did not run from 1.0 to 7.5 (SIGSTOP): nobody ticked at the 7.0 deadline,
    # and beta's status was waiting in the socket all along.
    out = alpha.receive(status_message("beta", 2), "eth0", 7.5)
    assert Log(level="WARN", text="Late heartbeat: Node beta: interval 6500 ms") in out
    assert of_type(out, NodeStatusChanged) == []
    stall = [o for o in out if isinstance(o, Log) and o.text.startswith("pulse did not run")]
    assert len(stall) == 1 and "6500 ms" in stall[0].text
    assert alpha.counters["stalls"] == 1
    assert alpha.counters["stall-ms-max"] == 6500


def test_after_a_stall_a_silent_peer_is_declared_dead_one_and_a_half_keepalives_later() -> None:
    alpha = make_engine(make_config(deadtime=3.0, initdead=6.0), "alpha")
    alpha.start(0.0)
    alpha.receive(status_message("beta", 1), "eth0", 1.0)
    # alpha resumes at 7.5 with nothing queued from beta (beta really died at 1.0).
    assert of_type(alpha.tick(7.5), NodeStatusChanged) == []
    out = []
    for _ in range(10):  # the timer task, on time from now on (keepalive 1 s)
        if alpha.next_deadline() > 9.0:
            break
        out += alpha.tick(alpha.next_deadline())
    deaths = of_type(out, NodeStatusChanged)
    assert [(d.node, d.new, d.at) for d in deaths] == [("beta", NodeStatus.DEAD, 9.0)]


def test_three_nodes_both_survivors_see_the_same_death_time() -> None:
    wire = Wire(make_config(("alpha", "beta", "gamma"), deadtime=4.0))
    wire.run_until(8.2)
    wire.stop("gamma")
    wire.run_until(20.0)
    assert deaths(wire, "alpha") == [("gamma", 12.0)]
    assert deaths(wire, "beta") == [("gamma", 12.0)]
    for name in ("alpha", "beta"):
        statuses = {n.name: n.status for n in wire.engines[name].view().nodes}
        assert statuses == {
            "alpha": NodeStatus.ACTIVE,
            "beta": NodeStatus.ACTIVE,
            "gamma": NodeStatus.DEAD,
        }


def test_cut_link_dies_while_node_stays_alive_over_the_other() -> None:
    wire = Wire(make_config(links=("eth0", "eth1"), deadtime=3.0))
    wire.run_until(10.5)
    wire.cut("beta", "eth1")
    wire.run_until(30.0)
    link_events = [
        (r.output.node, r.output.link, r.output.status, r.at)  # type: ignore[union-attr]
        for r in wire.outputs("alpha", LinkStatusChanged)
    ]
    assert link_events[-1] == ("beta", "eth1", LinkStatus.DEAD, 13.0)
    assert (13.0, "Link beta:eth1 dead.") in wire.logs("alpha")
    assert deaths(wire, "alpha") == []
    beta = wire.engines["alpha"].view().nodes[1]
    assert beta.status is NodeStatus.ACTIVE
    assert dict(beta.links) == {"eth0": LinkStatus.UP, "eth1": LinkStatus.DEAD}


def test_mended_link_comes_back_up_with_the_next_packet() -> None:
    wire = Wire(make_config(links=("eth0", "eth1"), deadtime=3.0))
    wire.run_until(10.5)
    wire.cut("beta", "eth1")
    wire.run_until(15.5)
    wire.mend("beta", "eth1")
    wire.run_until(17.0)
    assert (16.0, "Link beta:eth1 up.") in wire.logs("alpha")


def test_first_packet_logs_link_up_once_per_medium() -> None:
    wire = Wire(make_config(links=("eth0", "/dev/ttyS0")))
    wire.run_until(5.0)
    ups = [text for _, text in wire.logs("alpha") if text.startswith("Link ")]
    assert ups == ["Link beta:eth0 up.", "Link beta:/dev/ttyS0 up."]


def test_status_update_logged_in_heartbeat_words() -> None:
    wire = two_nodes()
    wire.run_until(1.0)
    texts = [text for _, text in wire.logs("alpha")]
    assert "Status update for node beta: status up" in texts
    assert "Status update for node beta: status active" in texts


def test_returning_peer_after_restart_is_up_again() -> None:
    wire = two_nodes(deadtime=3.0)
    wire.run_until(10.5)
    wire.stop("beta")
    wire.run_until(20.0)
    wire.add("beta", generation=1001, at=20.0)
    wire.run_until(22.0)
    back = [
        r.output
        for r in wire.outputs("alpha", NodeStatusChanged)
        if r.output.old is NodeStatus.DEAD  # type: ignore[union-attr]
    ]
    assert [(c.new, c.at) for c in back] == [(NodeStatus.INIT, 20.0)]  # type: ignore[union-attr]
    statuses = {n.name: n.status for n in wire.engines["alpha"].view().nodes}
    assert statuses["beta"] is NodeStatus.ACTIVE
    assert (20.0, "Heartbeat restart on node beta") in wire.logs("alpha")


def _ack_to_alpha(hg: int = 7) -> Message:
    ack = peer_message("NS_ackmsg", "beta", hg=hg, dest="alpha", extra=[("ackseq", "1")])
    return ack.with_field("destuuid", uuid_of("alpha"), FieldType.BINARY)


def _alpha_hearing_beta(beta_generation: int = 7) -> Engine:
    """alpha with comms up at 0.0, beta's last status at 0.0 (deadtime 3 s)."""
    alpha = make_engine(make_config(deadtime=3.0), "alpha")
    alpha.start(0.0)
    alpha.receive(status_message("beta", 1, hg=beta_generation), "eth0", 0.0)
    nodes = peer_message("repnodes", "beta", seq=2, hg=beta_generation, dest="alpha")
    alpha.receive(nodes, "eth0", 0.0)
    assert alpha.comms_up
    return alpha


def _beta_death(engine: Engine, until: float) -> float | None:
    deaths = [
        c.at
        for c in of_type(run_timers(engine, until), NodeStatusChanged)
        if c.node == "beta" and c.new is NodeStatus.DEAD
    ]
    return deaths[0] if deaths else None


def test_an_ack_addressed_to_us_keeps_a_peer_alive_whose_statuses_were_lost() -> None:
    alpha = _alpha_hearing_beta()
    run_timers(alpha, 2.5)
    alpha.receive(_ack_to_alpha(), "eth0", 2.5)  # beta's statuses are lost, its ACK is not
    assert _beta_death(alpha, 5.4) is None
    assert _beta_death(alpha, 6.0) == 5.5


def test_replayed_acks_keep_a_silent_peer_alive_for_at_most_one_more_deadtime() -> None:
    alpha = _alpha_hearing_beta()
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):  # one replayed ACK a second, no status
        run_timers(alpha, t)
        alpha.receive(_ack_to_alpha(), "eth0", t)
    death = _beta_death(alpha, 10.0)
    assert death == 6.0  # the last status at 0 + 2 x deadtime


def test_an_ack_of_an_older_generation_or_without_our_uuid_proves_nothing() -> None:
    alpha = _alpha_hearing_beta(beta_generation=8)
    run_timers(alpha, 2.5)
    alpha.receive(_ack_to_alpha(hg=7), "eth0", 2.5)
    bare = peer_message("NS_ackmsg", "beta", hg=8, dest="alpha", extra=[("ackseq", "1")])
    alpha.receive(bare, "eth0", 2.6)
    assert _beta_death(alpha, 4.0) == 3.0
