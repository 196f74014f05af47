"""Fake resource agents for tests of pulse and of plugins: pure trio, no processes.

A :class:`FakeResources` is a shared registry standing for "the machines": each agent
records where its resource runs, so a test can assert that a group never runs on
two nodes at once and see the order of starts and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    AutoFailback,
    BcastMedium,
    Config,
    ResourceGroup,
    ResourceSpec,
    Timing,
)
from pulse.plugin.api import hookimpl
from pulse.resources import ResourceError


@dataclass
class FakeResources:
    """Where each fake resource runs, and the journal of operations."""

    running: dict[str, set[str]] = field(default_factory=dict)  # resource -> nodes
    journal: list[tuple[float, str, str, str]] = field(default_factory=list)  # t, node, op, res
    fail_start: set[tuple[str, str]] = field(default_factory=set)  # (node, resource)
    fail_stop: set[tuple[str, str]] = field(default_factory=set)
    # Only the next start (stop) of the resource on the node fails; then it is removed.
    fail_start_once: set[tuple[str, str]] = field(default_factory=set)
    fail_stop_once: set[tuple[str, str]] = field(default_factory=set)
    delay: float = 0.0  # seconds each start/stop takes

    def factory(self, node: str) -> Callable[[ResourceSpec, Config], FakeAgent]:
        """A resource-agent factory for *node* (register it under a name, e.g. "Fake")."""
        return lambda spec, config: FakeAgent(spec, node, self)

    def where(self, resource: str) -> set[str]:
        return set(self.running.get(resource, set()))


class FakeAgent:
    def __init__(self, spec: ResourceSpec, node: str, world: FakeResources) -> None:
        self.spec = spec
        self.node = node
        self.world = world

    @property
    def name(self) -> str:
        return self.spec.args[0] if self.spec.args else self.spec.raw

    async def start(self) -> None:
        await trio.sleep(self.world.delay)
        self.world.journal.append((trio.current_time(), self.node, "start", self.name))
        if self._fails(self.world.fail_start, self.world.fail_start_once):
            raise ResourceError(self.spec.raw, "fake start failure")
        self.world.running.setdefault(self.name, set()).add(self.node)

    async def stop(self) -> None:
        await trio.sleep(self.world.delay)
        self.world.journal.append((trio.current_time(), self.node, "stop", self.name))
        if self._fails(self.world.fail_stop, self.world.fail_stop_once):
            raise ResourceError(self.spec.raw, "fake stop failure")
        self.world.running.get(self.name, set()).discard(self.node)

    def _fails(self, always: set[tuple[str, str]], once: set[tuple[str, str]]) -> bool:
        key = (self.node, self.name)
        if key in once:
            once.discard(key)
            return True
        return key in always

    async def status(self) -> bool:
        await trio.lowlevel.checkpoint()
        return self.node in self.world.running.get(self.name, set())


def two_node_config(timing: Timing, *, auto_failback: AutoFailback = AutoFailback.ON) -> Config:
    """prime and calc on ``bcast eth0`` (crc), one group ``Fake::web`` preferring prime."""
    return Config(
        nodes=("prime", "calc"),
        media=(BcastMedium(interface="eth0"),),
        auth=AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),)),
        timing=timing,
        groups=(
            ResourceGroup(
                node="prime",
                resources=(ResourceSpec(raw="Fake::web", agent="Fake", args=("web",)),),
            ),
        ),
        auto_failback=auto_failback,
    )


class FakePlugin:
    """A plugin registering the ``Fake`` agents of a :class:`FakeResources`, plus whatever
    takeover checks, event listeners and fencing devices a test gives it."""

    def __init__(
        self,
        world: FakeResources,
        *,
        checks: Iterable[Any] = (),
        listeners: Iterable[Any] = (),
        fencing: Iterable[Any] = (),
    ) -> None:
        self.world = world
        self.checks = list(checks)
        self.listeners = list(listeners)
        self.fencing = list(fencing)

    @hookimpl
    def pulse_register_resource_agents(self, node: str) -> Mapping[str, Any]:
        return {"Fake": self.world.factory(node)}

    @hookimpl
    def pulse_register_takeover_checks(self) -> list[Any]:
        return self.checks

    @hookimpl
    def pulse_register_event_listeners(self) -> list[Any]:
        return self.listeners

    @hookimpl
    def pulse_register_fencing_devices(self) -> list[Any]:
        return self.fencing
