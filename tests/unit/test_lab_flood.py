"""pulse_lab.flood makes the hostile packets bench/flood and the e2e tests send."""

from __future__ import annotations

import itertools
import random

from test_wire_fuzz import REAL, SHA1

from pulse.errors import WireError
from pulse.wire import decode
from pulse.wire.codec import screen
from pulse_lab.flood import KINDS, generator, max_gap, mixed, wrong_key_status


def refused(data: bytes) -> bool:
    if screen(data, SHA1) is not None:
        return True
    try:
        decode(data, SHA1)
    except WireError:
        return True
    return False


def test_every_kind_but_replay_is_refused_before_the_engine() -> None:
    rng = random.Random(1)
    for kind in KINDS:
        packets = list(itertools.islice(generator(kind, "calc", REAL, rng), 50))
        assert packets, kind
        if kind == "replay":
            assert not any(refused(p) for p in packets)  # signed: the engine's to drop
        elif kind != "mutated":  # a mutation may leave a packet as it was
            assert all(refused(p) for p in packets), kind


def test_a_wrong_key_status_looks_like_the_peers_own() -> None:
    packet = wrong_key_status("calc", 0x2A)
    assert b"\nsrc=calc\n" in packet and b"\nseq=2a\n" in packet
    assert screen(packet, SHA1) == "bad-signature"


def test_the_mix_cycles_through_every_kind() -> None:
    kinds = [kind for kind, _ in itertools.islice(mixed("calc", REAL, random.Random(2)), 70)]
    assert set(kinds) == set(KINDS)


def test_max_gap_looks_only_inside_the_window() -> None:
    arrivals = [0.0, 0.1, 0.5, 0.6, 2.0]
    assert max_gap(arrivals, 0.05, 0.65) == 0.4
    assert max_gap(arrivals, 1.0, 1.5) is None
