"""[[notify]] scripts: real programs run on the events of two whole daemons (fake agents)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import trio
from daemon_support import runs_on, start_daemons

from pulse.config.model import NotifyScript, Timing
from pulse.testing import FakeNetwork
from pulse.testing.agents import FakeResources, two_node_config
from pulse_lab.procstat import running

CONFIG = two_node_config(
    Timing(keepalive=100, deadtime=500, warntime=300, initdead=1000, deadping=500)
)
# Appends the PULSE_ part of its environment to the file named by its argument.
RECORDER = (
    "import json, os, sys\n"
    "env = {k: v for k, v in os.environ.items() if k.startswith('PULSE_')}\n"
    "open(sys.argv[1], 'a').write(json.dumps(env) + '\\n')\n"
)


def recorded(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_notify_script_sees_the_failover_in_its_environment(tmp_path: Path) -> None:
    world = FakeResources()
    network = FakeNetwork()
    log = tmp_path / "events.jsonl"
    script = NotifyScript(
        command=(sys.executable, "-c", RECORDER, str(log)),
        events=("node-dead", "acquired"),
        timeout=10000,
    )
    config = dataclasses.replace(CONFIG, notify=(script,))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await start_daemons(nursery, config, world, network, tmp_path)
            await runs_on(world, {"prime"})
            network.cut("prime", "eth0")
            await runs_on(world, {"calc"}, partly=True)
            for _ in range(200):
                seen = {(e["PULSE_LOCAL"], e["PULSE_EVENT"]) for e in recorded(log)}
                if {("calc", "node-dead"), ("calc", "acquired")} <= seen:
                    break
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    events = [e for e in recorded(log) if e["PULSE_LOCAL"] == "calc"]
    dead = next(e for e in events if e["PULSE_EVENT"] == "node-dead")
    assert dead["PULSE_NODE"] == "prime" and dead["PULSE_GROUP"] == ""
    taken = next(e for e in events if e["PULSE_EVENT"] == "acquired")
    assert (taken["PULSE_NODE"], taken["PULSE_GROUP"]) == ("calc", "Fake::web")
    assert taken["PULSE_REASON"].startswith("took over Fake::web: prime dead at")
    assert taken["PULSE_TIME"][:2] == "20" and "T" in taken["PULSE_TIME"]
    assert float(taken["PULSE_TIMESTAMP"]) > 1e9
    assert not [e for e in recorded(log) if e["PULSE_EVENT"] == "released"], "not asked for"


async def test_a_hung_notify_script_is_killed_at_its_timeout_and_counted(tmp_path: Path) -> None:
    world = FakeResources()
    network = FakeNetwork()
    pidfile = tmp_path / "hung.pid"
    hang = f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    script = NotifyScript(command=(sys.executable, "-c", hang), events=("acquired",), timeout=500)
    config = dataclasses.replace(CONFIG, notify=(script,))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            daemons = await start_daemons(nursery, config, world, network, tmp_path)
            await runs_on(world, {"prime"})
            stats: dict[str, object] = {}
            for _ in range(200):  # the script is killed 0.5 s after it started
                stats = daemons["prime"].plugin_status()["listeners"][
                    f"notify {Path(sys.executable).name}"
                ]
                if stats["failures"]:
                    break
                await trio.sleep(0.05)
            assert stats["failures"] == 1
            assert "timed out after 0.5 s" in str(stats["last_error"])
            pid = int(await trio.Path(pidfile).read_text())
            assert not running(pid), "the hung script outlived its timeout"
            nursery.cancel_scope.cancel()
