"""Heartbeat coalescing: a status that is nearly due goes out with the peer's.

An idle node's CPU goes on wake-ups, so two nodes take turns: one sends on its timer,
the other answers in the same wake-up in which it received that status, and the next
keepalive the roles swap. Statuses still go out every keepalive (give or take the
network delay), never more than TURN_SLACK late, and detection is unchanged.
"""

from __future__ import annotations

import itertools

from protocol_harness import Wire, deaths, make_config

from pulse.protocol.engine import COALESCE_WINDOW, TURN_SLACK

KEEPALIVE = 1.0


def status_times(wire: Wire, node: str, start: float, end: float) -> list[float]:
    return [t for t, _ in wire.sent(node, "status") if start <= t < end]


def wakes_per_keepalive(wire: Wire, node: str, start: float, end: float) -> float:
    return len([t for t in wire.wakes[node] if start <= t < end]) / ((end - start) / KEEPALIVE)


def two_coalescing_nodes(**kw: object) -> Wire:
    config = make_config(("alpha", "beta"), keepalive=KEEPALIVE, deadtime=4.0, warntime=3.0)
    return Wire(config, coalesce=True, delay=0.0007, **kw)  # type: ignore[arg-type]


def test_two_nodes_take_turns_and_each_wakes_three_times_per_two_keepalives() -> None:
    wire = two_coalescing_nodes(start_times={"alpha": 0.0, "beta": 0.37})
    wire.run_until(40.0)
    for node in ("alpha", "beta"):
        # After the 5 s start-up boost, about 1.5 wake-ups per keepalive (a grid needs 2).
        assert wakes_per_keepalive(wire, node, 10.0, 40.0) <= 1.6
        times = status_times(wire, node, 10.0, 40.0)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) <= KEEPALIVE * (1 + TURN_SLACK) + 0.01
        assert min(gaps) >= KEEPALIVE * (1 - COALESCE_WINDOW)
        # On average a status every keepalive plus the network delay, not fewer.
        assert sum(gaps) / len(gaps) <= KEEPALIVE + 0.005


def test_without_coalescing_the_same_pair_wakes_twice_per_keepalive() -> None:
    config = make_config(("alpha", "beta"), keepalive=KEEPALIVE, deadtime=4.0, warntime=3.0)
    wire = Wire(config, delay=0.0007, start_times={"alpha": 0.0, "beta": 0.37})
    wire.run_until(40.0)
    assert wakes_per_keepalive(wire, "alpha", 10.0, 40.0) >= 1.9


def test_a_node_locks_onto_its_peer_within_one_keepalive_sending_early_at_most_once() -> None:
    wire = two_coalescing_nodes(start_times={"alpha": 0.0, "beta": 0.45})
    wire.run_until(12.0)
    early = []
    for node in ("alpha", "beta"):
        times = status_times(wire, node, 6.0, 12.0)
        early += [b - a for a, b in itertools.pairwise(times) if b - a < 0.9]
    assert len(early) <= 1


def test_a_lone_node_keeps_the_exact_keepalive_grid() -> None:
    config = make_config(("alpha", "beta"), keepalive=KEEPALIVE, deadtime=4.0, warntime=3.0)
    wire = Wire(config, names=["alpha"], coalesce=True)
    wire.run_until(20.0)
    times = status_times(wire, "alpha", 10.0, 20.0)
    assert times == [float(t) for t in range(10, 20)]


def test_when_the_peer_goes_quiet_one_status_is_late_by_the_slack_then_the_grid_resumes() -> None:
    wire = two_coalescing_nodes()
    wire.run_until(10.0)
    wire.stop("beta")
    wire.run_until(20.0)
    times = status_times(wire, "alpha", 10.0, 20.0)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert max(gaps) <= KEEPALIVE * (1 + TURN_SLACK) + 0.01
    assert gaps[-5:] == [KEEPALIVE] * 5


def test_a_killed_coalescing_peer_is_declared_dead_exactly_deadtime_after_its_last_status() -> None:
    wire = two_coalescing_nodes()
    wire.run_until(10.0)
    last = max(at for at, _ in wire.sent("beta", "status"))
    wire.stop("beta")
    wire.run_until(20.0)
    ((node, at),) = deaths(wire, "alpha")
    assert node == "beta"
    # Deadtime counts from the last status heard, which arrived 0.7 ms after it left.
    assert at == last + 0.0007 + 4.0


def test_with_eight_nodes_and_a_jittery_network_each_sends_one_status_per_keepalive() -> None:
    # Statuses of seven peers, smeared over the keepalive by up to half of it of delay,
    # fall into every node's window all the time. Locking onto each one (the next status
    # a keepalive after it) sent one every 0.57 keepalive; early sends are now bounded
    # by late ones, as Heartbeat's rule and the wire rate in bench/scale require.
    names = [f"n{i}" for i in range(8)]
    config = make_config(names, keepalive=KEEPALIVE, deadtime=5.0, warntime=3.3, initdead=10.0)
    starts = {name: i * KEEPALIVE / 8 for i, name in enumerate(names)}
    wire = Wire(config, coalesce=True, delay=0.005, jitter=0.5, start_times=starts)
    wire.run_until(70.0)
    for name in names:
        assert len(status_times(wire, name, 20.0, 70.0)) <= 50 + 1
