"""Whole daemons in one process, on the in-memory :class:`pulse.testing.FakeNetwork`.

For virtual-time tests of the core and of plugins (under ``trio.testing.MockClock``):
each daemon gets its own plugin host (the plugins given, no entry points), its own
state directory and a fixed generation, uuid and RNG seed, so a run is repeatable.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import trio

from pulse.config import Loaded
from pulse.config.model import Config
from pulse.daemon import Daemon, DaemonOptions, serve
from pulse.plugin.host import PluginHost
from pulse.testing import FakeNetwork
from pulse.transport import Link


async def start_daemon(
    nursery: trio.Nursery,
    network: FakeNetwork,
    config: Config,
    name: str,
    plugins: Mapping[str, object],
    state_dir: Path,
) -> tuple[Daemon, trio.CancelScope]:
    """Start *name*'s daemon on *network*'s ``eth0``; cancel the scope to kill it."""
    host = PluginHost(load_entrypoints=False, plugins=plugins)
    options = DaemonOptions(
        state_dir=state_dir / name,
        handle_signals=False,
        rng=random.Random(name),
        generation=7,
        uuid=name.encode().ljust(16, b"\0"),
        loadavg=lambda: "n/a",
        plugins=host,
    )
    scope = trio.CancelScope()

    async def node(task_status: trio.TaskStatus[Daemon]) -> None:
        with scope:
            await serve(
                Loaded(config=config, node=name, warnings=()),
                options,
                # A FakeLink is a Link whose statistics() say more than LinkStatistics.
                links=[cast(Link, network.link(name, "eth0"))],
                task_status=task_status,
            )

    daemon: Daemon = await nursery.start(node)
    return daemon, scope
