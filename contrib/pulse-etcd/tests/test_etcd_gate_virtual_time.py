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
import re
from pathlib import Path

import pulse_etcd
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families
from pulse_etcd import LeaseGate, build_gate
from pulse_etcd.client import EtcdClient, HandlerTransport
from pulse_etcd.settings import Settings

from pulse import ClusterEvent, metrics
from pulse.cli.ctl import format_status
from pulse.config.model import Config, Timing
from pulse.control.status import node_status
from pulse.daemon import Daemon
from pulse.errors import Severity
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


def status_lines(c: Cluster, name: str) -> list[str]:
    """What ``pulsectl status`` prints under the group on *name*, from the etcd gate."""
    text = format_status(node_status(c.daemons[name][0]))
    return [line for line in text.splitlines() if line.startswith("  etcd: ")]


async def test_etcd_status_shows_each_groups_lease_holder_ttl_left_and_etcd_health(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        await trio.sleep(2)  # calc's gate has read the key and asked for prime's lease
        healthy = r"  etcd: lease holder prime, lease ttl left (\d\.\d)s, etcd healthy"
        for name in ("prime", "calc"):
            [line] = status_lines(c, name)
            shown = re.fullmatch(healthy, line)
            assert shown is not None, line
            assert 3.0 <= float(shown[1]) <= 5.0  # ttl 5 s, renewed every second
        c.fake.all_down()
        await trio.sleep(1)
        [line] = status_lines(c, "calc")
        assert re.fullmatch(
            r"  etcd: lease holder prime, lease ttl left \d\.\ds, "
            r"etcd unreachable since \d\d:\d\d:\d\d",
            line,
        ), line
        nursery.cancel_scope.cancel()


def etcd_samples(c: Cluster, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The metrics pulse-etcd adds on *name* (its pulse_collect_metrics), as scraped."""
    context = PluginContext(c.config, name, "etcd")
    context.state["gate"] = c.gates[name]  # what pulse_register_* made at start-up
    families = [("etcd", m) for m in pulse_etcd.pulse_collect_metrics(context)]
    readings = metrics.ProcessReadings(
        cpu_seconds=0.0, resident_bytes=0, virtual_bytes=0, open_fds=0, start_time=0.0
    )
    text = metrics.render(node_status(c.daemons[name][0]), readings, families)
    assert "# pulse:" not in text  # nothing left out
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("pulse_etcd_")
    }


async def test_etcd_metrics_show_the_lease_held_etcd_reachable_renewals_and_demotions(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        prime, calc = etcd_samples(c, "prime"), etcd_samples(c, "calc")
        web = (("group", "Fake::web"),)
        assert prime[("pulse_etcd_lease_held", web)] == 1
        assert calc[("pulse_etcd_lease_held", web)] == 0
        assert prime[("pulse_etcd_reachable", ())] == calc[("pulse_etcd_reachable", ())] == 1
        assert prime[("pulse_etcd_renewals_total", ())] >= 5
        assert 0 < prime[("pulse_etcd_last_renewal_seconds", ())] < 0.1
        assert 3.0 <= prime[("pulse_etcd_lease_ttl_seconds", ())] <= 5.0
        assert ("pulse_etcd_lease_ttl_seconds", ()) not in calc  # calc has no lease
        assert prime[("pulse_etcd_demotions_total", ())] == 0
        c.fake.cut.add("prime")
        await trio.sleep(5)
        prime = etcd_samples(c, "prime")
        assert prime[("pulse_etcd_reachable", ())] == 0
        assert prime[("pulse_etcd_lease_held", web)] == 0
        assert prime[("pulse_etcd_demotions_total", ())] == 1
        assert prime[("pulse_etcd_renew_failures_total", ())] >= 1
        nursery.cancel_scope.cancel()


def reloaded(c: Cluster, **table: object) -> Config:
    """The configuration after a reload with ``[plugins.etcd]`` = *table* (line 30 on)."""
    etcd: dict[str, object] = {
        "endpoints": list(c.fake.endpoints),
        "ttl": 5,
        "renew_interval": "1s",
        "safety_margin": "1.5s",
        "request_timeout": "500ms",
        "cluster": "linux-ha",
        **table,
    }
    lines = {("plugins", "etcd", k): 30 + i for i, k in enumerate(etcd)}
    return dataclasses.replace(
        c.config, plugins={"etcd": etcd}, key_lines=lines, origin="/etc/pulse/pulse.toml"
    )


def reconfigure(c: Cluster, name: str, config: Config) -> bool:
    context = PluginContext(config, name, "etcd")
    context.state["gate"] = c.gates[name]
    # As the reload does first: no error (warnings about the timing are fine).
    problems = pulse_etcd.pulse_configure(context)
    assert [d for d in problems if d.severity is Severity.ERROR] == []
    return pulse_etcd.pulse_reconfigure(config, context)


async def test_etcd_a_reload_applies_a_new_margin_and_endpoints_to_the_live_gate(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        gate = c.gates["prime"]
        # A larger margin: prime now gives web up 3 s after its last renewal, not 3.5.
        # (And the first endpoint dropped: the client uses only the two others.)
        new = reloaded(c, safety_margin="2s", endpoints=list(c.fake.endpoints[1:]))
        assert reconfigure(c, "prime", new)
        assert gate.settings.safety_margin == 2.0
        assert gate.client.endpoints == list(c.fake.endpoints[1:])
        await trio.sleep(2)
        assert gate.client.last_endpoint == c.fake.endpoints[1]
        renewed = gate._lease.sent if gate._lease else 0.0
        c.fake.cut.add("prime")
        await trio.sleep(5)
        [stop] = c.times("prime", "stop")
        assert renewed + 3.0 <= stop < renewed + 3.1
        assert c.overlaps == []
        nursery.cancel_scope.cancel()


async def test_etcd_a_reload_that_changes_the_ttl_or_the_keys_is_refused_whole_with_a_restart_hint(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with trio.open_nursery() as nursery:
        c = await two_nodes(nursery, tmp_path)
        gate = c.gates["prime"]
        before = gate.settings
        new = reloaded(c, ttl=8, safety_margin="2s", prefix="/ha")
        assert reconfigure(c, "prime", new) is False
        assert gate.settings is before  # nothing applied, not even the margin
        assert (
            "Reload: /etc/pulse/pulse.toml:31: plugins.etcd.ttl: changed from 5 to 8: etcd "
            "renews a live lease for the TTL it was granted, and this node's demotion "
            "deadline is reckoned from it; restart pulse to apply it" in caplog.text
        )
        assert (
            "/etc/pulse/pulse.toml:36: plugins.etcd.prefix: changed from '/pulse' to '/ha': "
            "it names the groups' keys" in caplog.text
        )
        # The table removed: the gate stays, and says so.
        gone = dataclasses.replace(c.config, plugins={}, origin="/etc/pulse/pulse.toml")
        assert reconfigure(c, "prime", gone) is False
        assert "plugins.etcd: etcd arbitration cannot stop in a running daemon" in caplog.text
        # The same table again, as it was: applied (nothing to change).
        assert reconfigure(c, "prime", reloaded(c)) is True
        assert gate.settings == before
        nursery.cancel_scope.cancel()
