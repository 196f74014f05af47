"""The monitored two-node set-up of the recovery tests in virtual time
(test_recovery_virtual_time.py, test_fail_counts_virtual_time.py)."""

from __future__ import annotations

import dataclasses

from pulse.config.model import MonitorOptions, Timing
from pulse.control.status import node_status
from pulse.daemon import Daemon
from pulse.testing.agents import FakeResources, two_node_config

BASE = two_node_config(
    Timing(keepalive=1000, deadtime=3000, warntime=2000, initdead=12000, deadping=3000)
)
MONITORED = dataclasses.replace(
    BASE,
    groups=(
        dataclasses.replace(
            BASE.groups[0],
            monitor=MonitorOptions(interval=2000, timeout=1000),
            failure_timeout=600_000,
        ),
    ),
)
KEY = "Fake::web"


def kill(world: FakeResources, node: str) -> None:
    world.running["web"].discard(node)


def starts(world: FakeResources, node: str) -> int:
    return sum(1 for _, n, op, _ in world.journal if n == node and op == "start")


def web_status(daemon: Daemon) -> dict[str, object]:
    (group,) = node_status(daemon)["resources"]["groups"]
    (web,) = group["resources"]
    assert isinstance(web, dict)
    return web
