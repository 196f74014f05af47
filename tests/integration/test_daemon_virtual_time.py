"""Whole daemons (engine + wiring + codec + signatures) over in-memory links, in virtual time.

trio's MockClock jumps over idle time, so a deadtime of 3 s costs nothing and the
times asserted are exact: a node is declared dead exactly deadtime after the last
heartbeat that reached its peer.
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio.testing

from pulse.config import Loaded
from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    SerialMedium,
    Timing,
)
from pulse.daemon import Daemon, DaemonOptions, serve
from pulse.protocol.events import (
    LinkStatus,
    LinkStatusChanged,
    NodeStatus,
    NodeStatusChanged,
    Output,
)
from pulse.testing import FakeNetwork

SHA1 = AuthKeys(
    outbound=1, keys=(AuthKey(index=1, method=AuthMethod.SHA1, key=b"pulse-test-secret"),)
)
TIMING = Timing(keepalive=1000, deadtime=3000, warntime=2000, initdead=12000, deadping=3000)


def cluster_config(nodes: tuple[str, ...], media: tuple[str, ...] = ("eth0",)) -> Config:
    return Config(
        nodes=nodes,
        media=tuple(BcastMedium(interface=m) for m in media),
        auth=SHA1,
        timing=TIMING,
    )


@asynccontextmanager
async def running(
    nursery: trio.Nursery,
    network: FakeNetwork,
    config: Config,
    name: str,
    tmp_path: Path,
) -> AsyncIterator[tuple[Daemon, trio.CancelScope]]:
    links = [
        network.link(name, m.name, classic_only=isinstance(m, SerialMedium)) for m in config.links
    ]
    options = DaemonOptions(
        state_dir=tmp_path / name,
        handle_signals=False,
        wallclock=lambda: 1_700_000_000.0 + trio.current_time(),
        rng=random.Random(name),
        generation=100,
        uuid=name.encode().ljust(16, b"\0")[:16],
        loadavg=lambda: "0.00 0.00 0.00 1/1 1",
    )
    scope = trio.CancelScope()

    async def node(task_status: trio.TaskStatus[Daemon]) -> None:
        with scope:
            await serve(
                Loaded(config=config, node=name, warnings=()),
                options,
                links=links,
                task_status=task_status,
            )

    daemon: Daemon = await nursery.start(node)
    yield daemon, scope


async def collect(rx: trio.MemoryReceiveChannel[Output], into: list[tuple[float, Output]]) -> None:
    async for event in rx:
        into.append((trio.current_time(), event))


def deaths(events: list[tuple[float, Output]]) -> list[tuple[float, str]]:
    return [
        (t, e.node)
        for t, e in events
        if isinstance(e, NodeStatusChanged) and e.new is NodeStatus.DEAD
    ]


async def test_two_daemons_see_each_other_active_and_detect_death_exactly_at_deadtime(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = cluster_config(("prime", "calc"))
    network = FakeNetwork()
    events: list[tuple[float, Output]] = []
    async with trio.open_nursery() as nursery:
        async with running(nursery, network, config, "prime", tmp_path) as (prime, _):
            nursery.start_soon(collect, prime.subscribe(), events)
            async with running(nursery, network, config, "calc", tmp_path) as (calc, calc_scope):
                await trio.sleep(5.5)
                assert prime.engine.view().comms_up
                assert calc.engine.view().comms_up
                statuses = {n.name: n.status for n in prime.engine.view().nodes}
                assert statuses["calc"] is NodeStatus.ACTIVE
                # calc's last heartbeat left at t=5.0; cut it off now (t=5.5).
                calc_scope.cancel()
                await trio.sleep(10)
                assert deaths(events) == [(8.0, "calc")]
                nursery.cancel_scope.cancel()


async def test_a_cut_link_is_reported_dead_while_the_node_stays_alive(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = cluster_config(("prime", "calc"), media=("eth0", "eth1"))
    network = FakeNetwork()
    events: list[tuple[float, Output]] = []
    async with trio.open_nursery() as nursery:
        async with running(nursery, network, config, "prime", tmp_path) as (prime, _):
            nursery.start_soon(collect, prime.subscribe(), events)
            async with running(nursery, network, config, "calc", tmp_path):
                await trio.sleep(4.5)
                network.cut("calc", "eth1")
                last = network.last_delivery("calc", "eth1")
                await trio.sleep(10)
                link_events = [
                    (t, e.link, e.status)
                    for t, e in events
                    if isinstance(e, LinkStatusChanged) and e.node == "calc"
                ]
                assert (last + 3.0, "eth1", LinkStatus.DEAD) in link_events
                assert not any(
                    link == "eth0" and s is LinkStatus.DEAD for _, link, s in link_events
                )
                assert deaths(events) == []
                nursery.cancel_scope.cancel()


async def test_three_nodes_one_killed_is_declared_dead_by_both_survivors(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = cluster_config(("server1", "server2", "server3"))
    network = FakeNetwork()
    seen: dict[str, list[tuple[float, Output]]] = {"server1": [], "server2": []}
    async with trio.open_nursery() as nursery:
        async with (
            running(nursery, network, config, "server1", tmp_path) as (s1, _),
            running(nursery, network, config, "server2", tmp_path) as (s2, _),
            running(nursery, network, config, "server3", tmp_path) as (_, s3_scope),
        ):
            nursery.start_soon(collect, s1.subscribe(), seen["server1"])
            nursery.start_soon(collect, s2.subscribe(), seen["server2"])
            await trio.sleep(6.5)
            s3_scope.cancel()  # last heartbeat at t=6.0
            await trio.sleep(10)
            assert deaths(seen["server1"]) == [(9.0, "server3")]
            assert deaths(seen["server2"]) == [(9.0, "server3")]
            nursery.cancel_scope.cancel()


async def test_garbage_and_wrongly_signed_packets_are_counted_not_fatal(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = cluster_config(("prime", "calc"))
    network = FakeNetwork()
    intruder = network.link("mallory", "eth0")
    async with trio.open_nursery() as nursery:
        async with running(nursery, network, config, "prime", tmp_path) as (prime, _):
            await trio.sleep(1)
            await intruder.send(b"\xff" * 40)
            await intruder.send(b">>>\nt=status\nsrc=calc\nauth=1 0000\n<<<\n")
            await intruder.send(b"###\n5:(0)t=,%%%\n")
            await trio.sleep(1)
            dropped = sum(n for k, n in prime.wire_counters.items() if k != "accepted")
            assert dropped == 3
            assert prime.engine.view().local_status in (NodeStatus.UP, NodeStatus.ACTIVE)
            nursery.cancel_scope.cancel()


async def test_serial_only_cluster_comes_up_over_classic_frames(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = Config(
        nodes=("julius", "caesar"),
        media=(SerialMedium(device="/dev/ttyS0"),),
        auth=SHA1,
        timing=TIMING,
    )
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        async with (
            running(nursery, network, config, "julius", tmp_path) as (julius, _),
            running(nursery, network, config, "caesar", tmp_path),
        ):
            await trio.sleep(3)
            assert julius.engine.view().comms_up
            assert julius.wire_counters["accepted"] > 0
            nursery.cancel_scope.cancel()


async def test_two_links_with_the_same_name_both_carry_heartbeats(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # `bcast eth0` and `ucast eth0` are two links that share a name, as in Heartbeat.
    config = cluster_config(("prime", "calc"))
    lan_a, lan_b = FakeNetwork(), FakeNetwork()
    links = {name: [lan_a.link(name, "eth0"), lan_b.link(name, "eth0")] for name in config.nodes}
    async with trio.open_nursery() as nursery:
        for name in config.nodes:
            options = DaemonOptions(
                state_dir=tmp_path / name,
                handle_signals=False,
                generation=1,
                uuid=name.encode().ljust(16, b"\0"),
                loadavg=lambda: "n/a",
            )
            await nursery.start(
                functools.partial(
                    serve, Loaded(config=config, node=name, warnings=()), options, links=links[name]
                )
            )
        await trio.sleep(3)
        a, b = (link.stats.packets_received for link in links["calc"])
        assert a > 0
        assert b > 0
        nursery.cancel_scope.cancel()


async def test_acks_for_another_node_are_dropped_undecoded_as_not_for_us_not_refused(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # With three nodes each one reads the ACKs the other two send each other
    # (wire/codec.py, ack_for_another): dropped before the HMAC, counted by the engine
    # as not-for-us as when it decoded them, and not among the wire's refusals.
    config = cluster_config(("server1", "server2", "server3"))
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        async with (
            running(nursery, network, config, "server1", tmp_path) as (s1, _),
            running(nursery, network, config, "server2", tmp_path),
            running(nursery, network, config, "server3", tmp_path),
        ):
            await trio.sleep(30)
            wire = s1.comms.wire_status()
            assert s1.engine.counters["not-for-us"] >= 2  # one ACK each 10 messages
            assert set(wire) == {"accepted"}, wire
            received = sum(link.statistics().packets_received for link in s1.comms.links)
            # Every packet read was either decoded (accepted) or one of those ACKs.
            assert wire["accepted"] + s1.engine.counters["not-for-us"] == received
            assert s1.engine.view().comms_up
            nursery.cancel_scope.cancel()
