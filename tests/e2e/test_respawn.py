"""A real pulse daemon keeps a `respawn` program running, and takes it down with it."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse_lab.cluster import PulseNode, ha_cf, wait_for
from pulse_lab.netns import Topology
from pulse_lab.procstat import running

pytestmark = [pytest.mark.netns, pytest.mark.slow]

CHILD = """#!/bin/sh
echo $$ >> "$1"
exec sleep 300
"""


def pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    """Where the program writes its pids; whatever is still alive at the end is killed."""
    path = tmp_path / "pids"
    try:
        yield path
    finally:
        for pid in pids(path):
            if running(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def program(node: PulseNode) -> dict[str, object]:
    [entry] = node.status()["respawn"]
    return dict(entry)


def test_a_respawn_program_starts_when_active_is_restarted_and_dies_with_pulse(
    topology: Topology, tmp_path: Path, pid_file: Path
) -> None:
    child = tmp_path / "child.sh"
    child.write_text(CHILD)
    child.chmod(0o755)
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    ns = topology.add_node("prime")
    topology.connect(ns, lan, "eth0", "198.51.100.10")
    config = ha_cf(["prime"], ["bcast eth0"], extra=[f"respawn root {child} {pid_file}"])
    prime = PulseNode(topology, ns, tmp_path, name="prime", ha_cf=config)
    prime.start()

    wait_for(lambda: len(pids(pid_file)) == 1, 10, "the program's first start")
    assert prime.status()["cluster"]["local_status"] == "active"
    [first] = pids(pid_file)
    wait_for(lambda: program(prime)["pid"] == first, 5, "the first pid in status")
    assert program(prime)["state"] == "running"
    prime.wait_log(f'Starting child client "{child} {pid_file}" (user root)')

    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(pids(pid_file)) == 2, 10, "the restart")
    second = pids(pid_file)[1]
    assert second != first
    wait_for(lambda: program(prime)["pid"] == second, 5, "the new pid in status")
    assert program(prime)["restarts"] == 1
    prime.wait_log(f"Client {child} {pid_file} (pid={first}) killed by signal 9.")
    prime.wait_log(f'Respawning client "{child} {pid_file}":')

    prime.stop()  # SIGTERM; bounded
    assert prime.proc is not None and prime.proc.returncode is not None
    assert not running(second)
    assert f"process group {second} with signal 15" in prime.log()
    assert len(pids(pid_file)) == 2  # not restarted at shutdown
