"""The reqnodes/repnodes exchange gates communications up (docs/heartbeat.md#node-list-exchange)."""

from __future__ import annotations

from protocol_harness import (
    Wire,
    make_config,
    make_engine,
    of_type,
    peer_message,
    status_message,
    transmits,
    uuid_of,
)

from pulse.protocol.events import CommsUp, Delivered, Log, NodeStatus


def test_peer_that_never_answers_keeps_us_up_and_we_retry_every_second() -> None:
    engine = make_engine(make_config(deadtime=10.0), "alpha")
    engine.start(0.0)
    first = transmits(engine.receive(status_message("beta", 1, st="up"), "eth0", 0.5))
    assert [(m.type, m.get("dest")) for m in first] == [("reqnodes", "beta")]
    resent = []
    seq = 2
    while engine.next_deadline() <= 4.0:
        t = engine.next_deadline()
        resent += [t for m in transmits(engine.tick(t)) if m.type == "reqnodes"]
        engine.receive(status_message("beta", seq, st="up"), "eth0", t)
        seq += 1
    assert resent == [1.5, 2.5, 3.5]
    assert engine.status is NodeStatus.UP and not engine.comms_up


def test_repnodes_brings_comms_up_and_status_active_at_once() -> None:
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    engine.receive(status_message("beta", 1, st="up"), "eth0", 0.5)
    out = engine.receive(peer_message("repnodes", "beta", seq=2, dest="alpha",
                                      extra=[("nodelist", "alpha beta "), ("delnodelist", " ")]),
                         "eth0", 0.7)  # fmt: skip
    logs = [o.text for o in out if isinstance(o, Log)]
    assert logs == ["Comm_now_up(): updating status to active", "Local status now set to: 'active'"]
    assert [m.get("st") for m in transmits(out)] == ["active"]
    assert of_type(out, CommsUp) == [CommsUp(at=0.7, peers=("beta",))]
    assert engine.next_deadline() == 1.0  # no more reqnodes


def test_repnodes_answer_lists_configured_nodes_exactly() -> None:
    engine = make_engine(make_config(("alpha", "beta", "gamma")), "alpha")
    engine.start(0.0)
    engine.receive(status_message("beta", 1), "eth0", 0.1)
    (reply,) = [
        m
        for m in transmits(
            engine.receive(peer_message("reqnodes", "beta", seq=2, dest="alpha"), "eth0", 0.2)
        )
        if m.type == "repnodes"
    ]
    assert [(f.name, f.value) for f in reply][:4] == [
        ("dest", b"beta"),
        ("t", b"repnodes"),
        ("nodelist", b"alpha beta gamma "),
        ("delnodelist", b" "),
    ]
    assert reply.get_bytes("destuuid") == uuid_of("beta")
    assert reply.get("src") == "alpha" and "seq" in reply


def test_reqnodes_goes_to_the_first_live_peer_in_config_order() -> None:
    engine = make_engine(make_config(("alpha", "beta", "gamma"), initdead=6.0), "alpha")
    engine.start(0.0)
    engine.receive(status_message("gamma", 1), "eth0", 0.1)
    assert (
        transmits(engine.receive(status_message("beta", 1), "eth0", 0.2))[0].get("dest") == "beta"
    )


def test_exchange_waits_until_every_node_is_heard_or_declared_dead() -> None:
    engine = make_engine(make_config(("alpha", "beta", "gamma"), initdead=6.0), "alpha")
    engine.start(0.0)
    assert not [
        m for m in transmits(engine.receive(status_message("beta", 1), "eth0", 0.1))
        if m.type == "reqnodes"
    ]  # fmt: skip
    t = 1.0
    while t < 6.0:
        engine.tick(t)
        engine.receive(status_message("beta", int(t) + 1), "eth0", t)
        t += 1.0
    out = engine.tick(6.0)
    assert Log(level="WARN", text="node gamma: is dead") in out
    assert [(m.type, m.get("dest")) for m in transmits(out) if m.type == "reqnodes"] == [
        ("reqnodes", "beta")
    ]


def test_target_dying_while_we_wait_lets_comms_come_up_alone() -> None:
    engine = make_engine(make_config(deadtime=3.0, initdead=6.0), "alpha")
    engine.start(0.0)
    engine.receive(status_message("beta", 1), "eth0", 0.5)
    out = []
    while not engine.comms_up and engine.next_deadline() < 20:
        out += engine.tick(engine.next_deadline())
    assert of_type(out, CommsUp) == [CommsUp(at=6.5)]  # beta died at 0.5 + initdead


def test_peer_without_protocol_field_is_not_waited_for() -> None:
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    out = engine.receive(status_message("beta", 1, protocol=False), "eth0", 0.3)
    assert Log(level="info", text="flow control disabled due to different version heartbeat") in out
    assert of_type(out, CommsUp) == [CommsUp(at=0.3, peers=("beta",))]
    assert not [m for m in transmits(out) if m.type in ("reqnodes", "NS_ackmsg")]


def test_repnodes_with_unknown_nodes_is_logged_and_our_list_kept() -> None:
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    engine.receive(status_message("beta", 1), "eth0", 0.1)
    rep = peer_message(
        "repnodes", "beta", seq=2, dest="alpha", extra=[("nodelist", "alpha beta omega ")]
    )
    out = engine.receive(rep, "eth0", 0.2)
    warns = [o.text for o in out if isinstance(o, Log) and o.level == "WARN"]
    assert warns == [
        "node list from beta differs from ours (unknown node(s) omega);"
        " keeping the configured node list"
    ]
    assert engine.comms_up
    assert [n.name for n in engine.view().nodes] == ["alpha", "beta"]


def test_reqnodes_for_another_node_is_not_answered() -> None:
    engine = make_engine(make_config(("alpha", "beta", "gamma")), "alpha")
    engine.start(0.0)
    out = engine.receive(peer_message("reqnodes", "beta", seq=1, dest="gamma"), "eth0", 0.1)
    assert not [m for m in transmits(out) if m.type == "repnodes"]


def test_three_engines_all_reach_active_over_the_wire() -> None:
    wire = Wire(make_config(("alpha", "beta", "gamma")), start_times={"gamma": 2.0})
    wire.run_until(3.0)
    for name in ("alpha", "beta", "gamma"):
        assert wire.engines[name].comms_up, name
    assert [r.at for r in wire.outputs("gamma", CommsUp)] == [2.0]


def test_application_messages_are_delivered_before_comms_up() -> None:
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    engine.receive(status_message("beta", 1, st="up"), "eth0", 0.1)
    out = engine.receive(peer_message("starting", "beta", seq=2), "eth0", 0.2)
    assert [d.message.type for d in of_type(out, Delivered)] == ["starting"]


def test_comms_up_names_a_peer_heard_only_through_an_ack_before_its_status() -> None:
    # A starting node can hear a running peer's ACK and node list before the peer's next
    # status heartbeat; the resource layer must still count that peer as alive.
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    ack = peer_message("NS_ackmsg", "beta", dest="alpha", extra=[("ackseq", "1")])
    engine.receive(ack, "eth0", 0.1)
    repnodes = peer_message(
        "repnodes",
        "beta",
        seq=5,
        dest="alpha",
        extra=[("nodelist", "alpha beta "), ("delnodelist", " ")],
    )
    out = engine.receive(repnodes, "eth0", 0.2)
    assert of_type(out, CommsUp) == [CommsUp(at=0.2, peers=("beta",))]
