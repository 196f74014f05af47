"""Receive filters, sequence tracking, retransmission, ACKs (docs/heartbeat.md#sequence-numbers)."""

from __future__ import annotations

import itertools

from protocol_harness import (
    Wire,
    log_texts,
    make_config,
    make_engine,
    of_type,
    peer_message,
    run_timers,
    status_message,
    transmits,
    uuid_of,
)

from pulse.protocol.engine import Engine
from pulse.protocol.events import (
    Delivered,
    Log,
    NodeRestarted,
    NodeStatus,
    NodeStatusChanged,
    PartitionHealed,
    Transmit,
)
from pulse.wire.message import FieldType, Message


def alpha_with_beta(**cfg: float) -> Engine:
    """alpha started at 0, beta heard (hg 7, seq 1) and comms up."""
    engine = make_engine(make_config(**cfg), "alpha")  # type: ignore[arg-type]
    engine.start(0.0)
    engine.receive(status_message("beta", 1), "eth0", 0.0)
    engine.receive(peer_message("repnodes", "beta", seq=2, dest="alpha"), "eth0", 0.0)
    assert engine.comms_up
    return engine


def app(src: str, seq: int, *, hg: int = 7, dest: str | None = None) -> Message:
    return peer_message("resource", src, seq=seq, hg=hg, dest=dest, extra=[("rsc_hold", "none")])


def test_duplicate_over_two_links_refreshes_both_but_is_delivered_once() -> None:
    engine = alpha_with_beta()
    msg = app("beta", 3)
    first = engine.receive(msg, "eth0", 1.0)
    second = engine.receive(msg, "eth1", 1.0)
    assert len(of_type(first, Delivered)) == 1 and of_type(second, Delivered) == []
    assert Log(level="info", text="Link beta:eth1 up.") in second
    assert engine.counters["duplicate"] == 1
    beta = engine.view().nodes[1]
    assert beta.links == {"eth0": "up", "eth1": "up"}


def test_lower_generation_is_dropped_as_replay_and_logged_once() -> None:
    engine = alpha_with_beta()
    out1 = engine.receive(app("beta", 3, hg=6), "eth0", 1.0)
    out2 = engine.receive(app("beta", 4, hg=6), "eth0", 1.1)
    assert of_type(out1 + out2, Delivered) == []
    assert engine.counters["replay"] == 2
    warns = [o.text for o in out1 + out2 if isinstance(o, Log)]
    assert warns == ["should_drop_message: attempted replay attack [beta]? [gen = 6, curgen = 7]"]


def test_higher_generation_status_is_a_restart_and_resets_sequence() -> None:
    engine = alpha_with_beta()
    engine.receive(app("beta", 3), "eth0", 1.0)
    out = engine.receive(status_message("beta", 1, hg=8, st="init"), "eth0", 2.0)
    assert of_type(out, NodeRestarted) == [NodeRestarted(node="beta", generation=8, at=2.0)]
    assert Log(level="info", text="Heartbeat restart on node beta") in out
    assert of_type(engine.receive(app("beta", 2, hg=8), "eth0", 2.1), Delivered)
    assert engine.view().nodes[1].generation == 8


def test_healed_partition_reported_but_no_restart() -> None:
    engine = alpha_with_beta(deadtime=3.0)
    engine.receive(status_message("beta", 3), "eth0", 1.0)
    died = of_type(run_timers(engine, 4.0), NodeStatusChanged)
    assert [(c.node, c.new) for c in died] == [("beta", NodeStatus.DEAD)]
    run_timers(engine, 10.0)
    out = engine.receive(status_message("beta", 9), "eth0", 10.0)
    assert of_type(out, PartitionHealed) == [PartitionHealed(node="beta", at=10.0)]
    assert Log(level="WARN", text="Cluster node beta returning after partition.") in out
    assert of_type(out, NodeRestarted) == []
    changes = of_type(out, NodeStatusChanged)
    assert [(c.old, c.new) for c in changes] == [(NodeStatus.DEAD, NodeStatus.ACTIVE)]
    assert engine.status is NodeStatus.ACTIVE  # the engine does not restart itself


def test_old_packet_of_a_dead_node_does_not_revive_it() -> None:
    engine = alpha_with_beta(deadtime=3.0)
    engine.receive(status_message("beta", 5), "eth0", 1.0)
    run_timers(engine, 5.0)
    assert engine.receive(status_message("beta", 4), "eth0", 5.0) == []
    assert engine.counters["stale"] == 1
    assert engine.view().nodes[1].status is NodeStatus.DEAD


def test_first_packet_after_death_is_in_order_despite_the_jump() -> None:
    engine = alpha_with_beta(deadtime=3.0)
    run_timers(engine, 5.0)
    out = engine.receive(app("beta", 40), "eth0", 5.0)
    assert of_type(out, Delivered)
    assert not [o for o in out if isinstance(o, Log) and "lost" in o.text]


def test_gap_is_logged_and_each_missing_seq_requested_after_a_random_delay() -> None:
    engine = alpha_with_beta()
    engine.tick(1.0)  # keepalive
    out = engine.receive(app("beta", 6), "eth0", 1.0)
    assert Log(level="WARN", text="3 lost packet(s) for [beta] [2:6]") in out
    assert of_type(out, Delivered)  # accepted despite the gap
    first_asked: dict[str, float] = {}
    requests: list[Message] = []
    for _ in range(20):
        t = engine.next_deadline()
        if t > 1.25:
            break
        for m in transmits(engine.tick(t)):
            if m.type == "NS_rexmit":
                requests.append(m)
                first_asked.setdefault(m.get("firstseq") or "", t)
    assert sorted(first_asked) == ["3", "4", "5"]
    assert all(1.05 <= t <= 1.25 for t in first_asked.values())
    req = requests[0]
    assert [f.name for f in req][:4] == ["t", "dest", "firstseq", "lastseq"]
    assert req.get("dest") == "beta" and req.get("firstseq") == req.get("lastseq")
    assert req.get_bytes("destuuid") == uuid_of("beta")
    assert "seq" not in req


def test_gap_requests_repeat_every_max_rexmit_delay_until_filled() -> None:
    engine = alpha_with_beta()
    engine.receive(app("beta", 4), "eth0", 1.0)
    times: list[float] = []
    for _ in range(10):
        if len(times) == 4:
            break
        t = engine.next_deadline()
        if any(m.type == "NS_rexmit" for m in transmits(engine.tick(t))):
            times.append(round(t, 6))
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.25] * 3
    out = engine.receive(app("beta", 3), "eth0", 2.5)
    assert Log(level="info", text="No pkts missing from beta!") in out
    assert of_type(out, Delivered)
    t = engine.next_deadline()
    assert not any(m.type == "NS_rexmit" for m in transmits(engine.tick(t)))


def test_more_than_250_missing_packets_resynchronise() -> None:
    engine = alpha_with_beta()
    out = engine.receive(app("beta", 300), "eth0", 1.0)
    assert Log(level="ERROR", text="lost a lot of packets from beta!") in out
    engine.tick(1.0)
    assert engine.next_deadline() == 2.0  # only the keepalive, no requests
    assert of_type(engine.receive(app("beta", 301), "eth0", 1.1), Delivered)


def test_old_packet_not_in_a_gap_is_dropped_without_refreshing_the_link() -> None:
    engine = alpha_with_beta()
    engine.receive(app("beta", 3), "eth0", 1.0)
    out = engine.receive(app("beta", 2), "eth1", 1.1)
    assert out == [] and engine.counters["stale"] == 1
    assert "eth1" not in engine.view().nodes[1].links


def test_retransmission_fills_the_gap_between_two_engines() -> None:
    config = make_config()
    alpha, beta = make_engine(config, "alpha"), make_engine(config, "beta")
    for m in transmits(alpha.start(0.0)):
        beta.receive(m, "eth0", 0.0)
    beta.start(0.0)
    sent = [
        transmits(alpha.send(Message.of(("t", "custom"), ("n", str(i))), 1.0))[0] for i in range(3)
    ]
    beta.receive(sent[0], "eth0", 1.0)
    beta.receive(sent[2], "eth0", 1.0)  # sent[1] was lost
    requests: list[Message] = []
    for _ in range(5):
        t = beta.next_deadline()
        requests = [m for m in transmits(beta.tick(t)) if m.type == "NS_rexmit"]
        if requests:
            break
    assert len(requests) == 1 and 1.05 <= t <= 1.25
    answer = [o for o in of_type(alpha.receive(requests[0], "eth0", t), Transmit) if o.retransmit]
    assert answer == [Transmit(message=sent[1], retransmit=True)]  # identical stored message
    out = beta.receive(answer[0].message, "eth0", t)
    assert Log(level="info", text="No pkts missing from alpha!") in out
    assert [d.message.get("n") for d in of_type(out, Delivered)] == ["1"]


def rexmit(firstseq: int | str, lastseq: int | str) -> Message:
    return peer_message(
        "NS_rexmit",
        "beta",
        dest="alpha",
        extra=[("firstseq", str(firstseq)), ("lastseq", str(lastseq))],
    )


def test_rexmit_for_a_seq_gone_from_history_is_naked_as_too_low() -> None:
    engine = alpha_with_beta()
    for _ in range(520):
        engine.send(Message.of(("t", "custom")), 1.0)
    (nak,) = transmits(engine.receive(rexmit(5, 5), "eth0", 2.0))
    assert [f.name for f in nak][:4] == ["t", "firstseq", "dest", "info"]
    assert (nak.type, nak.get("firstseq"), nak.get("info")) == (
        "NS_nak_rexmit",
        "5",
        "seqno too low",
    )
    assert "seq" not in nak


def test_rexmit_above_our_highest_seq_is_ignored() -> None:
    engine = alpha_with_beta()
    run_timers(engine, 2.0)
    assert engine.receive(rexmit(500, 500), "eth0", 2.0) == []


def test_rexmit_with_a_sequence_number_int_would_refuse_is_counted_not_raised() -> None:
    # "²" passes str.isdigit(); 5000 digits pass it too and exceed int()'s limit.
    engine = alpha_with_beta()
    run_timers(engine, 2.0)
    for first, last in (("\u00b2", "1"), ("1", "9" * 5000)):
        assert engine.receive(rexmit(first, last), "eth0", 2.0) == []
    assert engine.counters["bad-field"] == 2


def test_rexmit_answers_at_most_fifty_packets_per_request() -> None:
    engine = alpha_with_beta()
    for _ in range(100):
        engine.send(Message.of(("t", "custom")), 1.0)
    run_timers(engine, 2.0)
    out = engine.receive(rexmit(10, 90), "eth0", 2.0)
    assert len(out) == 50 and all(isinstance(o, Transmit) and o.retransmit for o in out)


def test_same_slot_is_not_resent_again_within_max_rexmit_delay() -> None:
    engine = alpha_with_beta()
    engine.send(Message.of(("t", "custom")), 1.0)
    run_timers(engine, 2.0)
    assert len(engine.receive(rexmit(5, 5), "eth0", 2.0)) == 1
    assert engine.receive(rexmit(5, 5), "eth0", 2.2) == []
    assert len(engine.receive(rexmit(5, 5), "eth0", 2.24)) == 1


def test_rexmit_of_a_seq_the_requester_acknowledged_is_ignored() -> None:
    engine = alpha_with_beta()
    engine.send(Message.of(("t", "custom")), 1.0)
    ack = peer_message("NS_ackmsg", "beta", dest="alpha", extra=[("ackseq", "5")])
    engine.receive(ack, "eth0", 1.5)
    assert engine.lowest_ack() == 5
    run_timers(engine, 2.0)
    assert engine.receive(rexmit(5, 5), "eth0", 2.0) == []


def test_nak_abandons_the_gap() -> None:
    engine = alpha_with_beta()
    engine.receive(app("beta", 4), "eth0", 1.0)
    nak = peer_message(
        "NS_nak_rexmit", "beta", dest="alpha", extra=[("firstseq", "3"), ("info", "seqno too low")]
    )
    out = engine.receive(nak, "eth0", 1.01)
    assert Log(level="ERROR", text="Irretrievably lost packet: node beta seq 3") in out
    engine.tick(1.0)
    assert engine.next_deadline() == 2.0  # no request left


def test_ack_sent_once_every_ten_in_order_messages_on_the_trigger() -> None:
    engine = alpha_with_beta()
    acks: list[tuple[int, Message]] = []
    for seq in range(3, 33):
        for m in transmits(engine.receive(app("beta", seq), "eth0", 1.0)):
            if m.type == "NS_ackmsg":
                acks.append((seq, m))
    seqs = [seq for seq, _ in acks]
    assert len(seqs) == 3 and seqs[1] - seqs[0] == 10 and seqs[2] - seqs[1] == 10
    seq, ack = acks[0]
    assert ack.get("ackseq") == format(seq, "x") and ack.get("dest") == "beta"
    assert [f.name for f in ack] == [
        "t", "dest", "ackseq", "destuuid", "src", "srcuuid", "hg", "ts", "ttl",
    ]  # fmt: skip


def test_no_ack_while_an_earlier_gap_is_open() -> None:
    engine = alpha_with_beta()
    engine.receive(app("beta", 4), "eth0", 1.0)  # seq 3 missing
    out: list[Message] = []
    for seq in range(5, 30):
        out += transmits(engine.receive(app("beta", seq), "eth0", 1.0))
    assert [m for m in out if m.type == "NS_ackmsg"] == []


def test_message_for_another_node_is_tracked_then_dropped() -> None:
    engine = alpha_with_beta()
    assert of_type(engine.receive(app("beta", 3, dest="gamma"), "eth0", 1.0), Delivered) == []
    assert engine.counters["not-for-us"] == 1
    out = engine.receive(app("beta", 4), "eth0", 1.1)
    assert of_type(out, Delivered) and not [o for o in out if isinstance(o, Log)]


def test_destuuid_decides_over_dest_name() -> None:
    engine = alpha_with_beta()
    ours = app("beta", 3, dest="someone").with_field("destuuid", uuid_of("alpha"), FieldType.BINARY)
    theirs = app("beta", 4, dest="alpha").with_field("destuuid", uuid_of("x"), FieldType.BINARY)
    assert of_type(engine.receive(ours, "eth0", 1.0), Delivered)
    assert of_type(engine.receive(theirs, "eth0", 1.0), Delivered) == []


def test_unknown_node_dropped_and_logged_once() -> None:
    engine = alpha_with_beta()
    out = engine.receive(app("zeta", 1), "eth0", 1.0) + engine.receive(app("zeta", 2), "eth0", 1.0)
    assert out == [Log(level="ERROR", text="bad node [zeta] in message")]
    assert engine.counters["unknown-node"] == 2


def test_own_packets_coming_back_are_ignored() -> None:
    engine = alpha_with_beta()
    own = transmits(engine.send(Message.of(("t", "custom")), 1.0))[0]
    assert engine.receive(own, "eth0", 1.0) == []
    assert engine.counters["own"] == 1


def test_messages_missing_envelope_fields_are_dropped() -> None:
    engine = alpha_with_beta()
    assert engine.receive(app("beta", 3).without("ts"), "eth0", 1.0) == []
    assert engine.receive(app("beta", 3).with_field("ts", "0"), "eth0", 1.0) == []
    assert engine.receive(app("beta", 3).without("seq"), "eth0", 1.0) == []
    assert engine.receive(app("beta", 3).without("t"), "eth0", 1.0) == []
    assert engine.counters["missing-field"] == 3 and engine.counters["bad-field"] == 1


def test_unknown_noseq_type_for_us_is_delivered_without_seq_tracking() -> None:
    engine = alpha_with_beta()
    msg = peer_message("NS_custom", "beta", extra=[("x", "1")])
    assert of_type(engine.receive(msg, "eth0", 1.0), Delivered) == [
        Delivered(message=msg, link="eth0", at=1.0)
    ]
    assert of_type(engine.receive(msg, "eth0", 1.0), Delivered)  # no duplicate detection


def test_a_peers_first_packets_out_of_order_leave_no_phantom_gap() -> None:
    # beta starts: status 1, status 2 and reqnodes 3 leave at the same instant; the
    # reqnodes overtakes both. Its first status (a generation alpha has not seen yet)
    # must not forget that 3 already arrived: a phantom gap would be requested for
    # ever, and beta, which alpha acknowledged 3 to, would ignore every request.
    engine = make_engine(make_config(), "alpha")
    engine.start(0.0)
    engine.receive(peer_message("reqnodes", "beta", seq=3, dest="alpha"), "eth0", 1.0)
    engine.receive(status_message("beta", 1), "eth0", 1.0)
    engine.receive(status_message("beta", 2), "eth0", 1.0)
    out = engine.receive(status_message("beta", 4), "eth0", 1.001)
    assert not [text for text in log_texts(out) if "lost packet" in text]
    engine.tick(2.0)
    assert engine.counters["rexmit-requests"] == 0
    assert engine.view().nodes[1].status is NodeStatus.ACTIVE


def test_a_restarted_peers_new_generation_still_restarts_sequence_tracking() -> None:
    engine = alpha_with_beta()
    engine.receive(app("beta", 3), "eth0", 1.0)
    # beta restarts (generation 8): its sequence numbers begin again at 1.
    out = engine.receive(status_message("beta", 1, hg=8), "eth0", 2.0)
    assert Log(level="info", text="Heartbeat restart on node beta") in out
    assert of_type(engine.receive(app("beta", 2, hg=8), "eth0", 2.1), Delivered)


def test_two_nodes_starting_with_reordering_jitter_never_ask_for_a_retransmission() -> None:
    # Without loss nothing is ever missing, however the start-up burst is reordered.
    for seed in range(12):
        config = make_config(("alpha", "beta"), keepalive=1.0, deadtime=4.0, warntime=3.0)
        wire = Wire(config, jitter=0.002, seed=seed, start_times={"alpha": 0.0, "beta": 0.37})
        wire.run_until(8.0)
        asked = {n: e.counters["rexmit-requests"] for n, e in wire.engines.items()}
        assert asked == {"alpha": 0, "beta": 0}, seed
