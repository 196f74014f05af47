"""Monitoring and recovery in whole daemons, in virtual time (docs/resources.md#recovery).

Two daemons (prime, calc) over the in-memory FakeNetwork, the group ``Fake::web``
preferring prime and monitored every 2 s. "Killing the service" removes it from the
fake world behind prime's back: its next monitor finds it not running.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from daemon_support import start_daemons
from recovery_support import BASE, KEY, MONITORED, kill, starts, web_status

from pulse import ClusterEvent
from pulse.cli.ctl import format_status
from pulse.config import Loaded
from pulse.config.model import MonitorOptions
from pulse.control.status import node_status
from pulse.plugin.host import PluginHost
from pulse.testing import FakeNetwork
from pulse.testing.agents import FakePlugin, FakeResources


class Events:
    name = "events"
    timeout = 1.0

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []  # kind, local, reason

    async def handle(self, event: ClusterEvent) -> None:
        if event.kind.startswith("resource-"):
            self.seen.append((event.kind, event.local, event.reason))


async def test_a_killed_service_is_restarted_in_place_and_the_third_failure_moves_the_group(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    events = Events()
    async with trio.open_nursery() as nursery:
        listening = PluginHost(
            load_entrypoints=False, plugins={"fake": FakePlugin(world, listeners=[events])}
        )
        daemons = await start_daemons(
            nursery, MONITORED, world, network, tmp_path, prime={"plugins": listening}
        )
        prime = daemons["prime"]
        await trio.sleep(15)
        assert world.where("web") == {"prime"}
        assert starts(world, "prime") == 1

        kill(world, "prime")
        await trio.sleep(3)  # the next check (every 2 s) finds it gone: restarted here
        assert world.where("web") == {"prime"}
        assert starts(world, "prime") == 2
        web = web_status(prime)
        assert web["fail_counts"] == {"prime": 1}
        failure = web["last_failure"]
        assert isinstance(failure, dict) and failure["state"] == "not-running"
        await trio.sleep(3)
        assert [kind for kind, _, _ in events.seen] == ["resource-failed", "resource-recovered"]
        assert events.seen[0][2].startswith(
            f"{KEY} is not running on prime (once in 10m): restarting {KEY} in place"
        )

        kill(world, "prime")
        await trio.sleep(3)
        assert starts(world, "prime") == 3
        kill(world, "prime")
        await trio.sleep(5)  # third failure in the window: prime refuses web, calc takes it
        assert world.where("web") == {"calc"}
        assert starts(world, "prime") == 3
        assert web_status(prime)["fail_counts"] == {"prime": 3}
        (group,) = node_status(prime)["resources"]["groups"]
        said = [t["what"] for t in group["transitions"]]
        assert said.count(f"restarted {KEY} in place on prime") == 2
        assert any(w.startswith(f"{KEY} is not running on prime (3 times in 10m)") for w in said)
        assert len(said) <= 20
        # The text status shows the last 5 of them, oldest first, the newest last.
        text = format_status(node_status(prime)).splitlines()
        head = next(i for i, line in enumerate(text) if "transitions (of" in line)
        assert text[head] == f"  last 5 transitions (of {len(said)}):"
        assert [line.strip().split("  ", 1)[1] for line in text[head + 1 : head + 6]] == said[-5:]
        assert events.seen[-1][0] == "resource-failed"
        assert "moving Fake::web (migration_threshold 3 reached)" in events.seen[-1][2]

        # cleanup forgets it: auto_failback on brings web back to its preferred node.
        assert await prime.resources.command("cleanup", KEY) is None
        await trio.sleep(5)
        assert world.where("web") == {"prime"}
        assert web_status(prime)["fail_counts"] == {}
        nursery.cancel_scope.cancel()


async def test_maintenance_mode_is_cluster_wide_and_stops_recovery_until_it_ends(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        daemons = await start_daemons(nursery, MONITORED, world, network, tmp_path)
        prime, calc = daemons["prime"], daemons["calc"]
        await trio.sleep(15)
        assert await calc.resources.command("maintenance", "on") is None
        await trio.sleep(1)
        assert node_status(prime)["resources"]["maintenance"] is True
        assert node_status(calc)["resources"]["maintenance"] is True

        kill(world, "prime")
        await trio.sleep(10)  # nothing is monitored, nothing restarted
        assert world.where("web") == set()
        assert starts(world, "prime") == 1

        assert await prime.resources.command("maintenance", "off") is None
        await trio.sleep(5)  # the monitor runs again, finds web gone and restarts it
        assert node_status(calc)["resources"]["maintenance"] is False
        assert world.where("web") == {"prime"}
        assert starts(world, "prime") == 2
        nursery.cancel_scope.cancel()


async def test_leaving_maintenance_restarts_nothing_that_runs_in_the_right_place(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        prime = (await start_daemons(nursery, MONITORED, world, network, tmp_path))["prime"]
        await trio.sleep(15)
        assert await prime.resources.command("maintenance", "on") is None
        await trio.sleep(10)
        assert await prime.resources.command("maintenance", "off") is None
        await trio.sleep(10)
        assert world.where("web") == {"prime"}
        assert [op for _, _, op, _ in world.journal] == ["start"]
        nursery.cancel_scope.cancel()


async def test_a_group_without_monitor_is_never_checked(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        prime = (await start_daemons(nursery, BASE, world, network, tmp_path))["prime"]
        await trio.sleep(15)
        kill(world, "prime")
        await trio.sleep(20)
        assert starts(world, "prime") == 1  # Heartbeat's behaviour: nobody watches
        web = web_status(prime)
        assert (web["state"], web["last_monitor"]) == ("-", None)
        nursery.cancel_scope.cancel()


async def test_the_start_up_probe_keeps_a_copy_running_on_its_node_and_stops_a_stray_one(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # web already runs on both nodes when the daemons start (prime restarted hard while
    # it ran web; calc restarted after running it): prime keeps its copy without a
    # second start, calc stops its own (docs/resources.md#start-up-probe).
    world = FakeResources(running={"web": {"prime", "calc"}})
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        daemons = await start_daemons(nursery, BASE, world, network, tmp_path)
        await trio.sleep(15)
        assert world.where("web") == {"prime"}
        assert [(n, op) for _, n, op, _ in world.journal] == [("calc", "stop")]
        said = [t["what"] for t in daemons["calc"].resources.transitions[KEY]]
        # "prime holds it", or "prime should run it" when calc's probe ended first
        stopped = [w for w in said if w.startswith(f"found {KEY} running here while prime ")]
        assert len(stopped) == 1 and stopped[0].endswith(": stopped the local copy"), said
        acquired = [t["what"] for t in daemons["prime"].resources.transitions[KEY]]
        assert f"holding {KEY}: acquiring {KEY}: it already runs here (start-up probe)" in acquired
        nursery.cancel_scope.cancel()


async def test_a_node_started_during_maintenance_adopts_it_and_takes_nothing_over(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        calc = (await start_daemons(nursery, BASE, world, network, tmp_path, only=("calc",)))[
            "calc"
        ]
        await trio.sleep(15)
        assert world.where("web") == {"calc"}
        assert await calc.resources.command("maintenance", "on") is None
        prime = (await start_daemons(nursery, BASE, world, network, tmp_path, only=("prime",)))[
            "prime"
        ]
        await trio.sleep(15)
        assert node_status(prime)["resources"]["maintenance"] is True
        assert world.where("web") == {"calc"}  # not failed back to prime
        assert [(n, op) for _, n, op, _ in world.journal] == [("calc", "start")]

        assert await prime.resources.command("maintenance", "off") is None
        await trio.sleep(10)
        assert node_status(calc)["resources"]["maintenance"] is False
        assert world.where("web") == {"prime"}  # auto_failback on, now that it may act
        nursery.cancel_scope.cancel()


async def test_failure_timeout_lifts_the_refusal_of_a_moved_group_and_it_fails_back(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        prime = (await start_daemons(nursery, MONITORED, world, network, tmp_path))["prime"]
        await trio.sleep(15)
        for _ in range(3):  # two restarts in place, then the move (migration_threshold 3)
            kill(world, "prime")
            await trio.sleep(4)
        assert world.where("web") == {"calc"}
        assert KEY in prime.resources.scheduler.failed_here

        await trio.sleep(500)  # failure_timeout is 10m: still refused
        assert world.where("web") == {"calc"}
        await trio.sleep(120)  # forgotten: auto_failback on brings it home
        assert world.where("web") == {"prime"}
        assert KEY not in prime.resources.scheduler.failed_here
        assert web_status(prime)["fail_counts"] == {}
        said = [t["what"] for t in prime.resources.transitions[KEY]]
        assert (
            f"the failures that moved {KEY} away are older than failure_timeout 10m: "
            "it may run here again"
        ) in said
        nursery.cancel_scope.cancel()


async def test_a_reload_that_turns_monitoring_on_watches_the_running_group_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    # Started without monitoring (Heartbeat's behaviour); a SIGHUP with a monitor for
    # web: the running group is watched from then on, and a killed service restarted.
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        prime = (await start_daemons(nursery, BASE, world, network, tmp_path))["prime"]
        await trio.sleep(15)
        assert starts(world, "prime") == 1
        loaded = Loaded(config=MONITORED, node="prime", warnings=())
        assert await prime.reload(lambda: loaded)
        await trio.sleep(0.1)  # the resource manager's task takes the new settings
        assert prime.resources.scheduler.groups[KEY].monitor == MonitorOptions(
            interval=2000, timeout=1000
        )
        kill(world, "prime")
        await trio.sleep(5)
        assert starts(world, "prime") == 2  # restarted in place by the new monitor
        assert web_status(prime)["state"] == "running"
        nursery.cancel_scope.cancel()
