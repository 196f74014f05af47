"""receive() and tick() never raise, whatever well-formed message arrives, in any order."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_harness import Wire, make_config, make_engine, uuid_of

from pulse.protocol.events import NodeStatus
from pulse.wire.message import Field, FieldType, Message

TYPES = [
    "status", "NS_st", "NS_rexmit", "NS_nak_rexmit", "NS_ackmsg", "reqnodes", "repnodes",
    "starting", "resource", "NS_weird", "", "shutdone",
]  # fmt: skip
NAMES = ["alpha", "beta", "gamma", "198.51.100.1", "BETA", "zeta", ""]
NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=2**70).map(lambda n: format(n, "x") if n >= 0 else str(n)),
    st.integers(min_value=0, max_value=600).map(str),
    st.sampled_from(["", "zz", "0", " 1", "-1", "1e3", "ff" * 20]),
)
VALUES = st.one_of(
    NUMBERS, st.sampled_from(NAMES), st.sampled_from(["init", "up", "active", "ping", "dead", "?"])
)
FIELD_NAMES = [
    "t", "src", "seq", "hg", "ts", "st", "dt", "protocol", "dest", "destuuid", "srcuuid",
    "firstseq", "lastseq", "ackseq", "nodelist", "info", "x",
]  # fmt: skip


@st.composite
def messages(draw: st.DrawFn) -> Message:
    fields = [
        Field("t", draw(st.sampled_from(TYPES)).encode()),
        Field("src", draw(st.sampled_from(NAMES)).encode()),
    ]
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(FIELD_NAMES))
        if name.endswith("uuid"):
            value = draw(st.sampled_from([uuid_of("alpha"), uuid_of("beta"), b"short", b""]))
            fields.append(Field(name, value, FieldType.BINARY))
        else:
            fields.append(Field(name, draw(VALUES).encode()))
    if draw(st.booleans()):
        fields.append(Field("ts", b"6b021fda"))
    if draw(st.booleans()):
        fields.append(Field("seq", format(draw(st.integers(0, 700)), "x").encode()))
    return Message(tuple(fields))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(messages(), st.sampled_from(["eth0", "eth1", "198.51.100.1"]), st.floats(0, 5)),
        max_size=40,
    )
)
def test_receive_and_tick_never_raise_on_arbitrary_messages(
    batch: list[tuple[Message, str, float]],
) -> None:
    config = make_config(("alpha", "beta", "gamma"), links=("eth0", "eth1"), ping=("198.51.100.1",))
    engine = make_engine(config, "alpha")
    engine.start(0.0)
    now = 0.0
    for message, link, step in batch:
        now += step
        while engine.next_deadline() <= now:
            before = engine.next_deadline()
            engine.tick(before)
            assert engine.next_deadline() > before  # nothing left due at that time
        engine.receive(message, link, now)
    view = engine.view()
    assert view.local_status in (NodeStatus.UP, NodeStatus.ACTIVE)


def test_lossy_duplicating_reordering_wire_still_converges() -> None:
    for seed in range(5):
        wire = Wire(
            make_config(("alpha", "beta", "gamma"), links=("eth0", "eth1"), deadtime=3.0),
            seed=seed,
            loss=0.2,
            duplicate=0.2,
            jitter=0.05,
        )
        wire.run_until(30.0)
        for name, engine in wire.engines.items():
            view = engine.view()
            assert view.comms_up, (seed, name)
            assert all(n.status is NodeStatus.ACTIVE for n in view.nodes), (seed, name)


def test_chaotic_run_is_deterministic_for_a_seed() -> None:
    def run() -> list[tuple[str, float, str]]:
        wire = Wire(make_config(deadtime=3.0), seed=42, loss=0.3, duplicate=0.3, jitter=0.1)
        wire.run_until(15.0)
        return [(r.node, r.at, repr(r.output)) for r in wire.records]

    assert run() == run()
    assert random.Random(0).random() == random.Random(0).random()
