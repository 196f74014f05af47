"""Plugin hooks in whole daemons, in virtual time: checks, listeners, fencing.

Two daemons (prime, calc) over the in-memory FakeNetwork, with fake resource agents
registered by a plugin. keepalive 1 s, deadtime 3 s: prime is cut off at t=6.5, its
last heartbeat left at t=6.0, so calc declares it dead at exactly t=9.0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio
import trio.testing

from pulse import ClusterEvent, hookimpl
from pulse.config import Loaded
from pulse.config.model import (
    MonitorOptions,
    ResourceGroup,
    ResourceOptions,
    ResourceSpec,
    Timing,
)
from pulse.daemon import Daemon
from pulse.errors import Diagnostic
from pulse.plugin import PluginContext
from pulse.plugin.api import GroupControl
from pulse.resources import AgentTimeouts, make_agent
from pulse.resources.ipaddr import FloatingIP
from pulse.resources.scripts import ScriptAgent
from pulse.testing import FakeNetwork
from pulse.testing.agents import FakePlugin, FakeResources, two_node_config
from pulse.testing.daemons import start_daemon

CONFIG = two_node_config(
    Timing(keepalive=1000, deadtime=3000, warntime=2000, initdead=12000, deadping=3000)
)


async def start(
    nursery: trio.Nursery,
    network: FakeNetwork,
    name: str,
    plugin: FakePlugin,
    tmp_path: Path,
    **more: object,
) -> tuple[Daemon, trio.CancelScope]:
    return await start_daemon(nursery, network, CONFIG, name, {"test": plugin, **more}, tmp_path)


def starts(world: FakeResources, node: str) -> list[float]:
    return [t for t, n, op, _ in world.journal if n == node and op == "start"]


class RefuseOn:
    name = "refuse"
    timeout = 5.0

    def __init__(self, node: str) -> None:
        self.node = node
        self.local = ""

    def applies_to(self, group: ResourceGroup) -> bool:
        return True

    async def check(self, group: ResourceGroup) -> str | None:
        await trio.lowlevel.checkpoint()
        return f"{group.key} is not safe here" if self.local == self.node else None


async def test_hook_pulse_register_takeover_checks_refusal_offers_the_group_to_the_peer(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        refuse = RefuseOn("prime")
        refuse.local = "prime"
        prime, _ = await start(
            nursery, network, "prime", FakePlugin(world, checks=[refuse]), tmp_path
        )
        await start(nursery, network, "calc", FakePlugin(world), tmp_path)
        await trio.sleep(15)
        assert world.where("web") == {"calc"}
        assert starts(world, "prime") == []
        stats = prime.plugin_status()["checks_and_fencing"]["refuse"]
        assert stats["failures"] >= 1
        assert "web is not safe here" in stats["last_error"]
        nursery.cancel_scope.cancel()


class Recorder:
    name = "recorder"
    timeout = 1.0

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str, str | None]] = []

    async def handle(self, event: ClusterEvent) -> None:
        self.events.append((trio.current_time(), event.kind, event.node, event.group))


class Stuck:
    name = "stuck"
    timeout = 100.0

    async def handle(self, event: ClusterEvent) -> None:
        await trio.sleep_forever()


async def test_hook_pulse_register_event_listeners_a_stuck_listener_delays_nothing(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        await start(nursery, network, "prime", FakePlugin(world), tmp_path)
        calc, _ = await start(
            nursery, network, "calc", FakePlugin(world, listeners=[Stuck(), recorder]), tmp_path
        )
        await trio.sleep(6.5)
        network.cut("prime", "eth0")
        await trio.sleep(10)
        assert starts(world, "calc") == [9.0]  # exactly deadtime after the last heartbeat
        assert (9.0, "node-dead", "prime", None) in recorder.events
        assert (9.0, "acquired", "calc", "Fake::web") in recorder.events
        listeners = calc.plugin_status()["listeners"]
        assert listeners["recorder"]["failures"] == 0
        assert listeners["stuck"]["calls"] == 1  # still inside its first event
        nursery.cancel_scope.cancel()


class OneRecorderPerDaemon:
    """One plugin object for every daemon in the process, as a plugin module is: each
    daemon's recorder lives in that daemon's context, not on the plugin."""

    @hookimpl
    def pulse_register_event_listeners(self, context: PluginContext) -> list[Recorder]:
        return [context.once("recorder", Recorder)]


def recorder_of(daemon: Daemon) -> Recorder:
    assert daemon.plugins is not None
    state = daemon.plugins.context(CONFIG, daemon.loaded.node).for_plugin("shared").state
    recorder = state["recorder"]
    assert isinstance(recorder, Recorder)
    return recorder


async def test_hook_context_gives_each_daemon_its_own_plugin_state(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    shared = OneRecorderPerDaemon()
    async with trio.open_nursery() as nursery:
        prime, _ = await start(
            nursery, network, "prime", FakePlugin(world), tmp_path, shared=shared
        )
        calc, _ = await start(nursery, network, "calc", FakePlugin(world), tmp_path, shared=shared)
        await trio.sleep(6.5)
        network.cut("prime", "eth0")
        await trio.sleep(10)
        on_prime, on_calc = recorder_of(prime), recorder_of(calc)
        assert on_prime is not on_calc
        assert (9.0, "node-dead", "prime", None) in on_calc.events
        assert (9.0, "acquired", "calc", "Fake::web") in on_calc.events
        assert all(kind != "acquired" or node == "prime" for _, kind, node, _ in on_prime.events)
        nursery.cancel_scope.cancel()


class FlakyFence:
    """Fails a number of times, then 'powers the node off' (its resources stop)."""

    name = "flaky"
    timeout = 2.0

    def __init__(self, world: FakeResources, failures: int) -> None:
        self.world = world
        self.failures = failures
        self.attempts: list[float] = []

    def can_fence(self, node: str) -> bool:
        return True

    async def fence(self, node: str) -> None:
        self.attempts.append(trio.current_time())
        await trio.sleep(0.5)
        if len(self.attempts) <= self.failures:
            raise OSError("power switch did not answer")
        for nodes in self.world.running.values():
            nodes.discard(node)


async def test_hook_pulse_register_fencing_devices_takeover_waits_for_a_successful_fence(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    fence = FlakyFence(world, failures=2)
    async with trio.open_nursery() as nursery:
        await start(nursery, network, "prime", FakePlugin(world), tmp_path)
        calc, _ = await start(
            nursery, network, "calc", FakePlugin(world, fencing=[fence]), tmp_path
        )
        await trio.sleep(6.5)
        assert world.where("web") == {"prime"}
        network.cut("prime", "eth0")
        await trio.sleep(11)  # t=17.5: two failed attempts (9.0, 14.5), none succeeded yet
        assert fence.attempts == [9.0, 14.5]
        assert starts(world, "calc") == []
        assert "fencing failed" in calc.plugin_status()["fencing"]["prime"]
        await trio.sleep(10)
        assert fence.attempts == [9.0, 14.5, 20.0]
        assert starts(world, "calc") == [20.5]  # right after the fence succeeded
        assert world.where("web") == {"calc"}
        nursery.cancel_scope.cancel()


async def test_a_node_leaving_with_a_group_whose_stop_failed_is_fenced_before_a_takeover(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # docs/resources.md#recovery: web dies on prime; its restart in place must first stop
    # db (after web in the group), which fails: the group is FAILED there. prime is then
    # stopped gracefully; calc takes the group only after fencing prime.
    group = CONFIG.groups[0]
    db = ResourceSpec(raw="Fake::db", agent="Fake", args=("db",))
    monitored = dataclasses.replace(
        CONFIG,
        groups=(
            dataclasses.replace(
                group,
                resources=(*group.resources, db),
                monitor=MonitorOptions(interval=2000, timeout=1000),
            ),
        ),
    )
    world = FakeResources()
    network = FakeNetwork()
    fence = FlakyFence(world, failures=0)
    plugins = {"prime": FakePlugin(world), "calc": FakePlugin(world, fencing=[fence])}
    async with trio.open_nursery() as nursery:
        daemons = {
            name: await start_daemon(
                nursery, network, monitored, name, {"test": plugins[name]}, tmp_path
            )
            for name in ("prime", "calc")
        }
        prime, prime_scope = daemons["prime"]
        await trio.sleep(15)
        assert world.where("web") == {"prime"}
        world.fail_stop.add(("prime", "db"))
        world.running["web"].discard("prime")
        await trio.sleep(30)
        assert prime.resources.view().groups[0].state == "failed"

        await prime.resources.shutdown(timeout=5)
        await prime.stop()
        await trio.sleep(0.2)
        prime_scope.cancel()
        await trio.sleep(10)
        assert len(fence.attempts) == 1
        assert starts(world, "calc")[0] > fence.attempts[0]  # after the fence, never before
        assert world.where("web") == world.where("db") == {"calc"}
        nursery.cancel_scope.cancel()


async def test_a_node_that_reported_holding_nothing_is_not_fenced(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    fence = FlakyFence(world, failures=0)
    async with trio.open_nursery() as nursery:
        # prime is the holder; calc holds nothing and says so. prime fences nobody when
        # calc dies.
        await start(nursery, network, "prime", FakePlugin(world, fencing=[fence]), tmp_path)
        await start(nursery, network, "calc", FakePlugin(world), tmp_path)
        await trio.sleep(6.5)
        network.cut("calc", "eth0")
        await trio.sleep(10)
        assert fence.attempts == []
        assert starts(world, "prime") == [0.0]  # kept, not restarted (calc, cut off and
        # without a fencing device, took it too: that is what fencing is for)
        nursery.cancel_scope.cancel()


async def test_a_node_joining_a_running_peer_never_takes_its_group(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # calc hears prime's ACK and node list before prime's next status heartbeat; it
    # must still count prime as alive and leave web where it runs.
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        await start(nursery, network, "prime", FakePlugin(world), tmp_path)
        await trio.sleep(20.3)
        assert world.where("web") == {"prime"}
        calc, _ = await start(nursery, network, "calc", FakePlugin(world), tmp_path)
        await trio.sleep(15)
        assert starts(world, "calc") == []
        assert world.where("web") == {"prime"}
        groups = calc.status()["resources"]["groups"]
        assert [(g["holder"], g["state"]) for g in groups] == [("prime", "running")]
        nursery.cancel_scope.cancel()


async def test_a_peer_dying_before_its_first_heartbeat_is_still_taken_over(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        await start(nursery, network, "prime", FakePlugin(world), tmp_path)
        await trio.sleep(20.3)
        await start(nursery, network, "calc", FakePlugin(world), tmp_path)
        await trio.sleep(0.1)  # before prime's next status reaches calc
        network.cut("prime", "eth0")
        await trio.sleep(15)
        assert len(starts(world, "calc")) == 1
        nursery.cancel_scope.cancel()


# A takeover check's background run(control): the GroupControl contract that
# pulse-etcd's self-demotion stands on.


class Demoter:
    """Gives web up at t=20 and lets it back at t=30 (on prime only)."""

    name = "demoter"
    timeout = 1.0

    def __init__(self) -> None:
        self.held: list[tuple[float, frozenset[str]]] = []
        self.alive: frozenset[str] = frozenset()

    def applies_to(self, group: ResourceGroup) -> bool:
        return True

    async def check(self, group: ResourceGroup) -> str | None:
        await trio.lowlevel.checkpoint()
        return None

    async def run(self, control: GroupControl) -> None:
        await trio.sleep_until(19)
        self.held.append((trio.current_time(), control.holding()))
        self.alive = control.alive_nodes()
        await trio.sleep_until(20)
        control.release("Fake::web", "lost the lease for Fake::web: a test said so")
        control.publish("lease-lost", group="Fake::web", reason="a test said so")
        await trio.sleep_until(29)
        self.held.append((trio.current_time(), control.holding()))
        await trio.sleep_until(30)
        control.readmit("Fake::web")
        await trio.sleep_forever()


class EventLog:
    name = "recorder"
    timeout = 1.0

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str, str | None, str]] = []

    async def handle(self, event: ClusterEvent) -> None:
        self.events.append((trio.current_time(), event.kind, event.node, event.group, event.reason))


async def test_hook_pulse_register_takeover_checks_run_can_release_a_group_and_readmit_it(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    demoter, recorder = Demoter(), EventLog()
    async with trio.open_nursery() as nursery:
        plugin = FakePlugin(world, checks=[demoter], listeners=[recorder])
        await start(nursery, network, "prime", plugin, tmp_path)
        await start(nursery, network, "calc", FakePlugin(world), tmp_path)
        await trio.sleep(25)
        assert demoter.held == [(19, frozenset({"Fake::web"}))]
        assert demoter.alive == {"prime", "calc"}
        assert world.where("web") == {"calc"}  # prime gave it up; calc took it
        stop = [t for t, n, op, _ in world.journal if n == "prime" and op == "stop"]
        assert len(stop) == 1 and 20 <= stop[0] < 20.5
        kinds = [(k, g) for _, k, n, g, _ in recorder.events if n == "prime"]
        assert ("lease-lost", "Fake::web") in kinds
        released = [r for _, k, _, _, r in recorder.events if k == "released"]
        assert any("lost the lease for Fake::web" in r for r in released)
        await trio.sleep(10)
        assert demoter.held[1] == (29, frozenset())
        # Readmitted at 30: auto_failback on brings web back to prime.
        assert world.where("web") == {"prime"}
        nursery.cancel_scope.cancel()


class Retunable:
    """A plugin whose listener takes a reload's ``[plugins.tuned]`` table."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, object]] = []

    @hookimpl
    def pulse_register_event_listeners(self, context: PluginContext) -> list[object]:
        context.state["made"] = "at start-up"
        return []

    @hookimpl
    def pulse_reconfigure(self, config: object, context: PluginContext) -> bool:
        self.calls.append((context.state.get("made"), context.config.plugins.get("tuned")))
        return True


async def test_hook_pulse_reconfigure_hands_a_changed_table_to_its_plugin_with_its_state(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, caplog: object
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    tuned = Retunable()
    async with trio.open_nursery() as nursery:
        prime, _ = await start(nursery, network, "prime", FakePlugin(world), tmp_path, tuned=tuned)
        await trio.sleep(2)
        new = dataclasses.replace(CONFIG, plugins={"tuned": {"level": 2}, "untunable": {"x": 1}})
        assert await prime.reload(lambda: Loaded(config=new, node="prime", warnings=()))
        # The plugin got the new table and the objects it made at start-up; the table of
        # a plugin that cannot apply one waits for a restart.
        assert tuned.calls == [("at start-up", {"level": 2})]
        assert prime.config.plugins["tuned"] == {"level": 2}
        nursery.cancel_scope.cancel()


class PickyRetunable(Retunable):
    """A Retunable whose ``pulse_configure`` refuses a negative ``level``."""

    @hookimpl
    def pulse_configure(self, context: PluginContext) -> list[Diagnostic]:
        level = context.config.plugins.get("tuned", {}).get("level", 0)
        if level < 0:
            return [Diagnostic(context.config.origin, 0, "[plugins.tuned] level below 0")]
        return []


async def test_a_plugin_table_with_errors_leaves_the_running_settings_and_is_offered_again(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    tuned = PickyRetunable()
    async with trio.open_nursery() as nursery:
        start_tables = {"tuned": {"level": 1}}
        config = dataclasses.replace(CONFIG, plugins=start_tables)
        prime, _ = await start_daemon(
            nursery, network, config, "prime", {"test": FakePlugin(world), "tuned": tuned}, tmp_path
        )
        await trio.sleep(2)
        bad = dataclasses.replace(CONFIG, plugins={"tuned": {"level": -1}})
        assert await prime.reload(lambda: Loaded(config=bad, node="prime", warnings=()))
        # Refused: the daemon, and the context the hooks see, keep the running table,
        # with the state the plugin made at start-up.
        assert tuned.calls == []
        assert prime.config.plugins["tuned"] == {"level": 1}
        context = prime.plugins.context(prime.config, "prime")
        assert context.config.plugins["tuned"] == {"level": 1}
        assert context.for_plugin("tuned").state["made"] == "at start-up"
        # The fixed table is a change again, and is applied.
        good = dataclasses.replace(CONFIG, plugins={"tuned": {"level": 2}})
        assert await prime.reload(lambda: Loaded(config=good, node="prime", warnings=()))
        assert tuned.calls == [("at start-up", {"level": 2})]
        assert prime.config.plugins["tuned"] == {"level": 2}
        nursery.cancel_scope.cancel()


async def test_a_reload_of_resources_retimes_the_agents_of_running_groups(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # [resources] changed: the same agent objects (a running ARP series, a stop in
    # progress undisturbed) take the new timeouts and announcements, the manager the
    # new stop retries.
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        prime, _ = await start(nursery, network, "prime", FakePlugin(world), tmp_path)
        await trio.sleep(2)
        script = ScriptAgent(
            ResourceSpec(raw="apache2", agent="apache2"),
            resource_dir=str(tmp_path),
            init_dir=str(tmp_path),
            env={},
            timeouts=AgentTimeouts(),
        )
        vip = make_agent(ResourceSpec(raw="198.51.100.10", agent="IPaddr"), CONFIG)
        assert isinstance(vip, FloatingIP)
        prime.resources.agents = {**prime.resources.agents, "extra": [script, vip]}
        options = ResourceOptions(stop=5000, stop_retries=2, arp_count=3, arp_interval=100)
        new = dataclasses.replace(CONFIG, resource_options=options)
        assert await prime.reload(lambda: Loaded(config=new, node="prime", warnings=()))
        assert script.timeouts.stop == 5.0
        assert (vip.arp.count, vip.arp.interval) == (3, 0.1)
        assert prime.resources.stop_retries == 2
        assert prime.resources.agents["extra"][0] is script  # the same objects
        nursery.cancel_scope.cancel()
