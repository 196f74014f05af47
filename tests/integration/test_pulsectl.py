"""pulsectl against a real daemon's control socket (in-process, real time, fake links)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from daemon_support import runs_on, socket_of, start_daemons

import pulse
from pulse.cli import ctl
from pulse.config.model import (
    MonitorOptions,
    Timing,
)
from pulse.testing import FakeNetwork
from pulse.testing.agents import FakeResources, two_node_config

CONFIG = two_node_config(
    Timing(keepalive=100, deadtime=500, warntime=300, initdead=1000, deadping=500)
)


def test_status_of_a_daemon_that_is_not_running_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ctl.main(["-s", str(tmp_path / "nothing.sock"), "status"]) == 3
    assert "pulse is not running" in capsys.readouterr().err


async def test_status_standby_and_plugins_through_the_control_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = FakeResources()
    network = FakeNetwork()

    async def pulsectl(*argv: str) -> tuple[int, str]:
        code = await trio.to_thread.run_sync(ctl.main, list(argv))
        return code, capsys.readouterr().out

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await start_daemons(nursery, CONFIG, world, network, tmp_path)
            await runs_on(world, {"prime"})

            code, out = await pulsectl("-s", socket_of(tmp_path, "prime"), "status")
            assert code == 0
            assert "prime" in out and "calc" in out
            assert "Fake::web" in out and "running" in out

            code, out = await pulsectl("-s", socket_of(tmp_path, "calc"), "status", "--json")
            status = json.loads(out)
            assert status["node"] == "calc"
            [group] = status["resources"]["groups"]
            assert (group["key"], group["holder"]) == ("Fake::web", "prime")

            code, out = await pulsectl("-s", socket_of(tmp_path, "prime"), "standby", "local")
            assert (code, out.strip()) == (0, "standby local accepted")
            await runs_on(world, {"calc"})

            code, out = await pulsectl("-s", socket_of(tmp_path, "calc"), "plugins")
            assert code == 0 and "fake" in out
            nursery.cancel_scope.cancel()


MONITORED = dataclasses.replace(
    CONFIG,
    groups=(
        dataclasses.replace(CONFIG.groups[0], monitor=MonitorOptions(interval=200, timeout=100)),
    ),
)


async def test_maintenance_and_cleanup_through_the_control_socket_reach_every_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = FakeResources()
    network = FakeNetwork()

    async def pulsectl(*argv: str) -> tuple[int, str, str]:
        code = await trio.to_thread.run_sync(ctl.main, list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    prime, calc = socket_of(tmp_path, "prime"), socket_of(tmp_path, "calc")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await start_daemons(nursery, MONITORED, world, network, tmp_path)
            await runs_on(world, {"prime"})
            await trio.sleep(0.5)  # a few monitors ran

            code, out, _ = await pulsectl("-s", prime, "status", "--json")
            [group] = json.loads(out)["resources"]["groups"]
            [web] = group["resources"]
            assert web["name"] == "Fake::web"
            assert web["state"] == "running"
            assert web["fail_counts"] == {}
            assert web["last_monitor"]["state"] == "running"
            assert web["last_failure"] is None
            code, out, _ = await pulsectl("-s", prime, "status")
            assert "  Fake::web: running (checked " in out

            code, out, _ = await pulsectl("-s", prime, "maintenance", "on")
            assert (code, out.strip()) == (0, "maintenance on accepted (sent to every node)")
            await trio.sleep(0.3)
            code, out, _ = await pulsectl("-s", calc, "status", "--json")
            assert json.loads(out)["resources"]["maintenance"] is True
            code, out, _ = await pulsectl("-s", calc, "status")
            assert out.startswith("MAINTENANCE: nothing is started, stopped or monitored")
            code, out, _ = await pulsectl("-s", calc, "maintenance", "off")
            await trio.sleep(0.3)
            code, out, _ = await pulsectl("-s", prime, "status", "--json")
            assert json.loads(out)["resources"]["maintenance"] is False

            code, out, _ = await pulsectl("-s", calc, "cleanup", "Fake::web")
            assert (code, out.strip()) == (0, "cleanup Fake::web accepted (sent to every node)")
            code, _, err = await pulsectl("-s", calc, "cleanup", "nginx")
            assert code != 0
            assert "cleanup nginx refused: unknown group 'nginx'" in err
            assert world.where("web") == {"prime"}
            nursery.cancel_scope.cancel()


def test_version_is_the_package_version() -> None:
    code = "import sys; from pulse.cli.ctl import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "--version"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"pulsectl (pulse) {pulse.__version__}"


def test_output_into_a_closed_pipe_ends_without_a_traceback() -> None:
    # `pulse convert | head -1`: the reader goes away after one line.
    script = (
        "import sys; from pulse.cli import closed_pipe_safe\n"
        "@closed_pipe_safe\n"
        "def main(argv=None):\n"
        "    for i in range(100000): print('line', i)\n"
        "    return 0\n"
        "sys.exit(main())\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as writer:
        assert writer.stdout is not None and writer.stderr is not None
        assert writer.stdout.readline() == b"line 0\n"
        writer.stdout.close()
        assert writer.wait(timeout=30) == 0
        assert writer.stderr.read() == b""


def test_status_text_shows_under_each_group_what_a_plugin_object_says_of_it() -> None:
    group = {"key": "web", "holder": "prime", "state": "running", "reason": "", "since": 0}
    status = {
        "version": "1",
        "node": "prime",
        "uptime": 5.0,
        "cluster": {"local": "prime", "local_status": "active", "comms_up": True,
                    "generation": 1, "nodes": [], "counters": {}},
        "resources": {"groups": [group, {**group, "key": "db"}], "decision": "-",
                      "standby": []},
        "plugins": {"listeners": {
            "gate": {"failures": 0, "dropped": 0,
                     "details": {"groups": {"web": {"lease holder": "prime", "etcd": "up"}}}},
            "mail": {"failures": 0, "dropped": 0, "details": {"sent": 3}},  # nothing per group
        }},
    }  # fmt: skip
    lines = ctl.format_status(status).splitlines()
    at = lines.index(next(x for x in lines if x.startswith("web ")))
    assert lines[at + 1] == "  gate: lease holder prime, etcd up"
    assert lines[at + 2].startswith("db ")  # nothing said of db
    plugins = ctl.format_plugins({"loaded": [], **status["plugins"]})
    assert "gate: " not in plugins  # the per-group entry is for status only
    assert "mail: sent 3" in plugins
