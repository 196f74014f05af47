"""Two (or more) whole daemons with fake agents and control sockets (real or virtual clock)."""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

import trio

from pulse.config import Loaded
from pulse.config.model import Config
from pulse.daemon import Daemon, DaemonOptions, serve
from pulse.plugin.host import PluginHost
from pulse.testing import FakeNetwork
from pulse.testing.agents import FakePlugin, FakeResources


async def start_daemons(
    nursery: trio.Nursery,
    config: Config,
    world: FakeResources,
    network: FakeNetwork,
    tmp_path: Path,
    only: tuple[str, ...] | None = None,
    **options: Any,
) -> dict[str, Daemon]:
    """Start one daemon per node of *config*, its control socket at ``socket_of(tmp_path,
    name)``; ``options[name]`` adds (or replaces) DaemonOptions for one node; *only*: start
    just these nodes (the others may be started later by another call)."""
    daemons = {}
    for name in config.nodes if only is None else only:
        chosen: dict[str, Any] = {
            "state_dir": tmp_path / name,
            "control_socket": Path(socket_of(tmp_path, name)),
            "handle_signals": False,
            "rng": random.Random(name),
            "generation": 3,
            "uuid": name.encode().ljust(16, b"\0"),
            "loadavg": lambda: "n/a",
            "plugins": PluginHost(load_entrypoints=False, plugins={"fake": FakePlugin(world)}),
        }
        chosen.update(options.get(name, {}))
        opts = DaemonOptions(**chosen)
        loaded = Loaded(config=config, node=name, warnings=())
        links = [network.link(name, "eth0")]
        daemons[name] = await nursery.start(functools.partial(serve, loaded, opts, links=links))
    return daemons


def socket_of(tmp_path: Path, name: str) -> str:
    return str(tmp_path / f"{name}.sock")


async def runs_on(world: FakeResources, nodes: set[str], *, partly: bool = False) -> None:
    """Wait until group ``web`` runs on exactly *nodes* (or at least on them: *partly*)."""
    for _ in range(400):  # bounded by the tests' fail_after too
        where = world.where("web")
        if where == nodes or (partly and nodes <= where):
            return
        await trio.sleep(0.05)
    raise AssertionError(f"web runs on {world.where('web')}, not {nodes}")
