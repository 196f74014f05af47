"""Signed but mutated packets (a buggy or compromised member) interleaved with a peer's
real stream: once they stop, the real stream alone puts every view right within a
dead time. Pure engine tests in virtual time (tests/unit/protocol_harness.py)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_harness import Wire, deaths, make_config, peer_message, status_message, uuid_of

from pulse.protocol.engine import Engine
from pulse.protocol.events import NodeStatus, NodeStatusChanged
from pulse.protocol.identity import PeerMark
from pulse.wire.message import FieldType, Message

KEEPALIVE = 1.0
DEADTIME = 3.0
ATTACK_START = 10.0

SEQS = st.one_of(
    st.integers(2**31, 2**64).map(lambda n: ("abs", n)),
    st.integers(-300, 400).map(lambda n: ("rel", n)),
    st.sampled_from([("abs", 0), ("abs", 1)]),
)
GENERATIONS = st.one_of(
    st.integers(-3, 3).map(lambda n: ("rel", n)),
    st.sampled_from([("abs", 0), ("abs", 2**40)]),
)
MUTATIONS = st.fixed_dictionaries(
    {
        "seq": SEQS,
        "hg": GENERATIONS,
        "t": st.sampled_from(["status", "status", "NS_st", "NS_ackmsg", "reqnodes", "resource"]),
    },
    optional={
        "st": st.sampled_from(["init", "up", "active", "dead", "ping", "??"]),
        "dt": st.sampled_from(["0", "1", "5", "fffffff", "zz"]),
        "srcuuid": st.binary(min_size=16, max_size=16),
        "ackseq": st.sampled_from(["0", "ffffffff"]),
    },
)


def _number(spec: tuple[str, int], current: int) -> int:
    kind, n = spec
    return max(0, current + n) if kind == "rel" else n


def mutated(real: Message, mutation: dict[str, object]) -> Message:
    seq = int(real.get("seq") or "0", 16)
    hg = int(real.get("hg") or "0", 16)
    msg = real.with_field("seq", format(_number(mutation["seq"], seq), "x"))  # type: ignore[arg-type]
    msg = msg.with_field("hg", format(_number(mutation["hg"], hg), "x"))  # type: ignore[arg-type]
    msg = msg.with_field("t", str(mutation["t"]))
    for name in ("st", "dt", "ackseq"):
        if name in mutation:
            msg = msg.with_field(name, str(mutation[name]))
    if "srcuuid" in mutation:
        msg = msg.with_field("srcuuid", mutation["srcuuid"], FieldType.BINARY)  # type: ignore[arg-type]
    return msg


def attacked_cluster(mutations: list[dict[str, object]], gap: float) -> tuple[Wire, float]:
    """alpha and beta up and active; then each mutation, a copy of beta's latest real
    packet changed as it says, reaches alpha *gap* seconds after the previous one, while
    beta keeps sending. Returns the wire and the time of the last mutated packet."""
    wire = Wire(make_config(keepalive=KEEPALIVE, deadtime=DEADTIME))
    wire.run_until(ATTACK_START)
    at = ATTACK_START
    for mutation in mutations:
        at += gap
        wire.run_until(at)
        real = [m for _, m in wire.sent("beta") if "seq" in m][-1]
        wire.inject("alpha", mutated(real, mutation), "eth0", at)
    return wire, at


def assert_views_right_after_one_deadtime(wire: Wire, attack_end: float) -> None:
    settled = attack_end + DEADTIME
    wire.run_until(settled + 3 * DEADTIME)
    late = [at for node, at in deaths(wire, "alpha") if node == "beta" and at > settled]
    assert late == [], "alpha declared the live beta dead after the attack ended"
    for node, peer in (("alpha", "beta"), ("beta", "alpha")):
        view = {n.name: n.status for n in wire.engines[node].view().nodes}
        assert view[peer] is NodeStatus.ACTIVE, (node, view)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MUTATIONS, min_size=1, max_size=12), st.sampled_from([0.05, 0.3, 1.3]))
def test_signed_mutated_packets_leave_no_lasting_wrong_view(
    mutations: list[dict[str, object]], gap: float
) -> None:
    wire, end = attacked_cluster(mutations, gap)
    assert_views_right_after_one_deadtime(wire, end)


def test_one_status_with_a_huge_seq_does_not_make_the_real_stream_stale() -> None:
    wire, end = attacked_cluster([{"seq": ("abs", 2**40), "hg": ("rel", 0), "t": "status"}], 0.3)
    assert_views_right_after_one_deadtime(wire, end)


def test_one_status_of_a_later_generation_does_not_make_the_real_stream_a_replay() -> None:
    wire, end = attacked_cluster([{"seq": ("rel", 1), "hg": ("rel", 1), "t": "status"}], 0.3)
    assert_views_right_after_one_deadtime(wire, end)


def test_a_status_a_few_hundred_ahead_does_not_silence_the_real_statuses() -> None:
    wire, end = attacked_cluster([{"seq": ("rel", 200), "hg": ("rel", 0), "t": "status"}], 0.3)
    assert_views_right_after_one_deadtime(wire, end)


def test_a_mutated_status_filling_a_gap_does_not_silence_the_real_ones_before_it() -> None:
    huge = {"seq": ("abs", 2**31), "hg": ("rel", 0), "t": "status"}
    ahead = {"seq": ("rel", 79), "hg": ("rel", 0), "t": "reqnodes"}  # undoes the jump
    filling = {"seq": ("rel", 25), "hg": ("rel", 0), "t": "status"}  # fills the new gap
    wire, end = attacked_cluster([huge, ahead, huge, filling], 0.05)
    assert_views_right_after_one_deadtime(wire, end)


def test_a_mutated_tiny_dead_time_then_a_jump_leave_no_lasting_wrong_view() -> None:
    huge = {"seq": ("abs", 2**31), "hg": ("rel", 0), "t": "status"}
    for tiny, jump in (("1", huge), ("1", {**huge, "hg": ("rel", 1)})):
        for ahead in (1, 238):
            killer = {"seq": ("rel", ahead), "hg": ("rel", 0), "t": "status", "dt": tiny}
            wire, end = attacked_cluster([huge, huge, killer, jump], 0.05)
            assert_views_right_after_one_deadtime(wire, end)


# ---------------------------------------------------------------- replay across a restart


def restarted_alpha(marks: dict[str, PeerMark]) -> Engine:
    engine = Engine(
        config=make_config(keepalive=KEEPALIVE, deadtime=DEADTIME),
        local="alpha",
        generation=2000,
        uuid=uuid_of("alpha"),
        now=0.0,
        wallclock=lambda: 1_800_000_000.0,
        loadavg=lambda: "0.00 0.00 0.00 1/1 1",
        rng=random.Random(0),
        coalesce=False,
        peer_marks=marks,
    )
    engine.start(0.0)
    return engine


def beta_death(engine: Engine, replays: list[Message], until: float) -> float | None:
    """Feed *replays* one per keepalive while ticking; when alpha declared beta dead."""
    now = 0.0
    for i in range(int(until / KEEPALIVE * 10)):
        now = i * KEEPALIVE / 10
        while engine.next_deadline() <= now:
            for out in engine.tick(engine.next_deadline()):
                if isinstance(out, NodeStatusChanged) and out.new is NodeStatus.DEAD:
                    return out.at
        if replays and i % 10 == 5:
            engine.receive(replays[(i // 10) % len(replays)], "eth0", now)
    return None


def test_replays_of_a_dead_peer_do_not_delay_a_restarted_nodes_takeover() -> None:
    captured = [status_message("beta", seq, hg=7) for seq in range(60, 101)]
    quiet = beta_death(restarted_alpha({"beta": PeerMark(7, 100)}), [], 30.0)
    engine = restarted_alpha({"beta": PeerMark(7, 100)})
    replayed = beta_death(engine, captured, 30.0)
    assert quiet is not None and replayed == quiet
    assert engine.counters["replay"] > 0
    for packet in captured[:5]:  # and after the death too
        engine.receive(packet, "eth0", 40.0)
    assert {n.name: n.status for n in engine.view().nodes}["beta"] is NodeStatus.DEAD


def test_without_the_marks_replays_make_a_dead_peer_look_alive() -> None:
    captured = [status_message("beta", seq, hg=7) for seq in range(60, 101)]
    assert beta_death(restarted_alpha({}), captured, 30.0) is None


def test_a_peer_that_lived_on_or_restarted_is_accepted_after_our_restart() -> None:
    for hg, seq in ((7, 101), (7, 5000), (8, 1)):
        engine = restarted_alpha({"beta": PeerMark(7, 100)})
        engine.receive(status_message("beta", seq, hg=hg), "eth0", 0.5)
        assert {n.name: n.status for n in engine.view().nodes}["beta"] is NodeStatus.ACTIVE
        assert engine.peer_marks(0.5)["beta"] == PeerMark(hg, seq)


def test_the_saved_mark_is_the_real_stream_not_a_mutated_jump() -> None:
    wire, at = attacked_cluster([{"seq": ("abs", 2**40), "hg": ("rel", 0), "t": "status"}], 0.3)
    assert wire.engines["alpha"].peer_marks(at)["beta"].seq < 100


def test_an_ack_or_rexmit_request_of_an_older_generation_is_counted_as_a_replay() -> None:
    engine = restarted_alpha({"beta": PeerMark(7, 100)})
    fields = [("ackseq", "1"), ("firstseq", "1"), ("lastseq", "1")]
    for t in ("NS_ackmsg", "NS_rexmit"):
        engine.receive(peer_message(t, "beta", hg=6, extra=fields, dest="alpha"), "eth0", 0.5)
    assert engine.counters["replay"] == 2
    # ... and so is one of the very generation our previous run knew: it has no seq
    # that could show it new (a status past the mark does).
    engine.receive(peer_message("NS_ackmsg", "beta", hg=7, extra=fields, dest="alpha"), "eth0", 0.6)
    assert engine.counters["replay"] == 3
    links = {n.name: n.links for n in engine.view().nodes}["beta"]
    assert all(str(status) == "dead" for status in links.values())


def test_mutated_packets_taking_the_next_seqs_first_do_not_silence_the_real_statuses() -> None:
    ahead = [{"seq": ("rel", n), "hg": ("rel", 0), "t": "status"} for n in range(1, 9)]
    wire, end = attacked_cluster(ahead, 0.01)
    assert_views_right_after_one_deadtime(wire, end)
