"""The lease gate in whole daemons, in virtual time, against pulse.testing.etcd's fake.

Two daemons (prime, calc) on the in-memory FakeNetwork, keepalive 1 s, deadtime 3 s;
one group ``Fake::web`` preferring prime. etcd: ttl 5 s, renew every 1 s, safety
margin 1.5 s, 0.5 s per request. So a holder that cannot renew gives its groups up
3.5 s after it sent its last answered renewal, and etcd drops its lease 5 s after
etcd received it (plus up to 0.5 s for etcd's revocation loop).

Every test samples where web runs every 10 ms of virtual time and asserts it never
runs on both nodes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio
import trio.testing
from pulse_etcd import LeaseGate, build_gate
from pulse_etcd.client import EtcdClient, HandlerTransport
from pulse_etcd.settings import Settings

from pulse import ClusterEvent
from pulse.config.model import Config, Timing
from pulse.daemon import Daemon
from pulse.plugin.api import PluginContext
from pulse.testing import FakeNetwork
from pulse.testing.agents import FakePlugin, FakeResources, two_node_config
from pulse.testing.daemons import start_daemon
from pulse.testing.etcd import FakeEtcd

CONFIG = two_node_config(
    Timing(keepalive=1000, deadtime=3000, warntime=2000, initdead=12000, deadping=3000)
)
KEY = "/pulse/linux-ha/groups/Fake%3A%3Aweb"


def settings(fake: FakeEtcd, **more: object) -> Settings:
    base = Settings(
        endpoints=fake.endpoints,
        ttl=5,
        renew_interval=1.0,
        safety_margin=1.5,
        request_timeout=0.5,
        cluster="linux-ha",
    )
    return dataclasses.replace(base, **more)  # type: ignore[arg-type]


class Cluster:
    def __init__(
        self, nursery: trio.Nursery, tmp_path: Path, fake: FakeEtcd, config: Config = CONFIG
    ) -> None:
        self.config = config
        self.nursery = nursery
        self.tmp_path = tmp_path
        self.fake = fake
        self.world = FakeResources()
        self.network = FakeNetwork()
        self.gates: dict[str, LeaseGate] = {}
        self.daemons: dict[str, tuple[Daemon, trio.CancelScope]] = {}
        self.overlaps: list[float] = []
        self.events: list[tuple[str, str, str]] = []  # (listener's node, kind, reason)

    async def start(self, name: str, **more: object) -> None:
        gate = build_gate(
            settings(self.fake, **more),
            PluginContext(self.config, name),
            transport=HandlerTransport(self.fake.client(name)),
        )
        self.gates[name] = gate
        plugin = FakePlugin(self.world, checks=[gate], listeners=[gate, Events(name, self)])
        self.daemons[name] = await start_daemon(
            self.nursery, self.network, self.config, name, {"test": plugin}, self.tmp_path
        )

    async def sample(self) -> None:
        for _ in range(100_000):  # 1000 s of virtual time at most
            if len(self.world.where("web")) > 1:  # (on two nodes or more)
                self.overlaps.append(trio.current_time())
            await trio.sleep(0.01)

    def times(self, node: str, op: str) -> list[float]:
        return [t for t, n, o, _ in self.world.journal if n == node and o == op]


class Events:
    name = "events"
    timeout = 1.0

    def __init__(self, node: str, cluster: Cluster) -> None:
        self.node, self.cluster = node, cluster

    async def handle(self, event: ClusterEvent) -> None:
        self.cluster.events.append((self.node, event.kind, event.reason))


async def two_nodes(nursery: trio.Nursery, tmp_path: Path, **more: object) -> Cluster:
    cluster = Cluster(nursery, tmp_path, FakeEtcd())
    await cluster.start("prime", **more)
    await cluster.start("calc", **more)
    nursery.start_soon(cluster.sample)
    await trio.sleep_until(15)
    assert cluster.world.where("web") == {"prime"}
    assert (cluster.fake.value(KEY) or "").startswith("prime ")
    return cluster


async def test_etcd_a_holder_cut_from_its_peer_and_etcd_gives_up_before_the_peer_takes_over(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        prime = c.gates["prime"]
        renewed = prime._lease.sent if prime._lease else 0.0
        c.network.cut("prime", "eth0")
        c.fake.cut.add("prime")
        await trio.sleep(15)
        [stop] = c.times("prime", "stop")
        [start] = c.times("calc", "start")
        # prime gave web up 3.5 s after its last renewal, before its lease could go...
        assert renewed + 3.5 <= stop < renewed + 3.6
        # ...and calc took web only once etcd had dropped prime's lease.
        assert renewed + 5 <= start <= renewed + 5 + 0.5 + 0.2
        assert c.world.where("web") == {"calc"}
        assert c.overlaps == []
        assert prime.counters["demotions"] == 1
        assert "lost the etcd lease for Fake::web: etcd unreachable since" in caplog.text
        nursery.cancel_scope.cancel()


async def test_etcd_two_nodes_that_lose_each_other_but_not_etcd_never_both_hold_the_group(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        c.network.cut_one_way("prime", "calc")
        c.network.cut_one_way("calc", "prime")
        await trio.sleep(30)
        assert c.world.where("web") == {"prime"}
        assert c.times("calc", "start") == []
        assert c.overlaps == []
        stats = c.gates["calc"].statistics()
        assert stats["refused"] == ["Fake::web"]
        assert stats["holders"] == {"Fake::web": "prime"}
        # Healed: calc sees its peer again and nothing moves.
        c.network.heal()
        await trio.sleep(15)
        assert c.world.where("web") == {"prime"}
        assert c.overlaps == []
        nursery.cancel_scope.cancel()


async def test_etcd_a_hard_killed_holder_is_replaced_within_max_deadtime_ttl_plus_600ms(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        killed = trio.current_time()
        c.daemons["prime"][1].cancel()
        c.world.running["web"].discard("prime")  # the machine is gone, its VIP with it
        await trio.sleep(15)
        [start] = c.times("calc", "start")
        assert start - killed <= max(3.0, 5.0) + 0.6
        assert c.world.where("web") == {"calc"}
        nursery.cancel_scope.cancel()


async def test_etcd_a_leader_election_moves_nothing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        c.fake.elect(2.1)  # the longest measured after a leader kill
        await trio.sleep(5)
        c.fake.frozen.add(c.fake.endpoints[0])  # a frozen member: the others serve
        await trio.sleep(10)
        assert c.times("prime", "stop") == []
        assert c.world.where("web") == {"prime"}
        assert c.gates["prime"].counters["renew_failures"] >= 1
        assert [k for _, k, _ in c.events if k.startswith("etcd-")] == []  # not worth a mail
        nursery.cancel_scope.cancel()


async def test_etcd_a_graceful_move_deletes_the_key_so_the_peer_starts_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        manager = c.daemons["prime"][0].resources
        assert manager is not None
        assert await manager.command("standby", "all") is None
        await trio.sleep(5)
        [stop] = c.times("prime", "stop")
        [start] = c.times("calc", "start")
        assert start - stop < 0.3  # not a lease expiry
        assert (c.fake.value(KEY) or "").startswith("calc ")
        assert c.gates["prime"].counters["keys_deleted"] == 1
        assert c.overlaps == []
        nursery.cancel_scope.cancel()


async def test_etcd_down_for_everyone_with_stop_takes_the_group_down_and_back(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        renewed = c.gates["prime"]._lease.sent if c.gates["prime"]._lease else 0.0
        c.fake.all_down()
        await trio.sleep(10)
        [stop] = c.times("prime", "stop")
        assert stop < renewed + 3.6
        assert c.world.where("web") == set()  # stop: safety over availability
        c.fake.all_up()
        await trio.sleep(20)
        assert len(c.world.where("web")) == 1
        kinds = [k for n, k, _ in c.events if n == "prime" and k.startswith("etcd-")]
        assert kinds == ["etcd-lost", "etcd-regained"], "\n".join(map(str, c.events))
        assert c.overlaps == []
        nursery.cancel_scope.cancel()


async def test_etcd_down_for_everyone_with_keep_keeps_the_group_while_the_nodes_see_each_other(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path, on_etcd_lost="keep")
        c.fake.all_down()
        await trio.sleep(20)
        assert c.times("prime", "stop") == []
        assert c.gates["prime"].statistics()["keeping_without_etcd"] is True
        c.fake.all_up()
        await trio.sleep(5)
        # The lease expired meanwhile: prime took its key again under a new lease.
        assert (c.fake.value(KEY) or "").startswith("prime ")
        assert c.gates["prime"].statistics()["owned"] == ["Fake::web"]
        # etcd down again, and now the nodes lose each other too: keep no longer holds.
        c.fake.all_down()
        c.network.cut("calc", "eth0")
        await trio.sleep(10)
        assert c.times("prime", "stop") != []
        assert c.overlaps == []
        nursery.cancel_scope.cancel()


async def test_etcd_a_key_left_by_an_earlier_run_of_the_same_node_is_replaced_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    fake = FakeEtcd()
    earlier = EtcdClient(fake.endpoints, transport=HandlerTransport(fake.client("old")))
    lease, _ = await earlier.grant(60)
    assert (await earlier.create(KEY, "prime 1", lease)).ok
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, tmp_path, fake)
        await c.start("prime")
        await c.start("calc")
        nursery.start_soon(c.sample)
        await trio.sleep(15)
        assert c.world.where("web") == {"prime"}
        value = fake.value(KEY) or ""
        assert value.startswith("prime ") and value != "prime 1"
        assert c.times("prime", "start")[0] < 14  # no wait for the old 60 s lease
        nursery.cancel_scope.cancel()
    await earlier.aclose()


async def test_etcd_three_nodes_the_cut_holder_gives_up_and_exactly_one_other_takes_over(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    config = dataclasses.replace(CONFIG, nodes=("prime", "calc", "milk"))
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, tmp_path, FakeEtcd(), config)
        for name in config.nodes:
            await c.start(name)
        nursery.start_soon(c.sample)
        await trio.sleep_until(15)
        assert c.world.where("web") == {"prime"}
        c.network.cut("prime", "eth0")
        c.fake.cut.add("prime")
        await trio.sleep(20)
        [stop] = c.times("prime", "stop")
        starts = [t for t, n, o, _ in c.world.journal if o == "start" and n != "prime"]
        assert len(starts) == 1 and stop < starts[0]
        assert len(c.world.where("web")) == 1 and "prime" not in c.world.where("web")
        assert c.overlaps == []
        # prime comes back: auto_failback brings web home, through etcd, with no overlap.
        c.network.restore("prime", "eth0")
        c.fake.cut.discard("prime")
        await trio.sleep(30)
        assert c.world.where("web") == {"prime"}
        assert c.overlaps == []
        nursery.cancel_scope.cancel()
