"""A fake cluster of pure Scheduler instances, for the failover policy tests.

The bus delivers every Send to every other live node at once; the executor completes
every Acquire/Release at once (or fails it when a test says so). Times are exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    AutoFailback,
    BcastMedium,
    Config,
    Medium,
    PingMedium,
    ResourceGroup,
    ResourceSpec,
)
from pulse.failover.policy import (
    Acquire,
    Action,
    Decision,
    GroupState,
    Refresh,
    Release,
    Scheduler,
    Send,
)
from pulse.wire.message import Message


def make_config(
    nodes: Iterable[str],
    groups: dict[str, str],
    policy: AutoFailback = AutoFailback.ON,
    *,
    ping: Iterable[str] = (),
    ipfail: bool = False,
) -> Config:
    """groups: key -> preferred node; ping: ping node addresses."""
    media: tuple[Medium, ...] = (BcastMedium(interface="eth0"),)
    return Config(
        nodes=tuple(nodes),
        media=media + tuple(PingMedium(host=h) for h in ping),
        ipfail=ipfail,
        auth=AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),)),
        groups=tuple(
            ResourceGroup(
                node=node, resources=(ResourceSpec(raw=key, agent="IPaddr", args=(key,)),)
            )
            for key, node in groups.items()
        ),
        auto_failback=policy,
    )


@dataclass
class Cluster:
    config: Config
    now: float = 0.0
    nodes: dict[str, Scheduler] = field(default_factory=dict)
    alive: set[str] = field(default_factory=set)
    fail_start: set[tuple[str, str]] = field(default_factory=set)  # (node, group)
    fail_stop: set[tuple[str, str]] = field(default_factory=set)
    journal: list[tuple[float, str, Action]] = field(default_factory=list)
    check_safety: bool = True  # off while a test partitions the cluster on purpose
    blocked: set[tuple[str, str]] = field(default_factory=set)  # (sender, receiver) cut

    def cut(self, sender: str, receiver: str, *, both: bool = True) -> None:
        """Messages from *sender* no longer reach *receiver* (and back, unless one-way)."""
        self.blocked.add((sender, receiver))
        if both:
            self.blocked.add((receiver, sender))

    def heal(self) -> None:
        self.blocked.clear()

    def start(self, name: str) -> None:
        """Boot a node: it becomes alive for everyone, then its communications come up."""
        self.nodes[name] = Scheduler(config=self.config, local=name, now=self.now)
        self.alive.add(name)
        for other in self.alive - {name}:
            self.nodes[name].node_status(other, True, self.now)
            self.apply(other, self.nodes[other].node_status(name, True, self.now))
        self.apply(name, self.nodes[name].comms_up(self.now))

    def kill(self, name: str) -> None:
        self.alive.discard(name)
        del self.nodes[name]
        for other in sorted(self.alive):
            self.apply(other, self.nodes[other].node_status(name, False, self.now, when="21:33:05"))

    def stop(self, name: str) -> None:
        """Graceful stop: release everything, send shutdone, then leave."""
        self.apply(name, self.nodes[name].shutdown(self.now))
        assert self.nodes[name].is_released()
        self.broadcast(name, self.nodes[name].shutdone_message())
        self.kill(name)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for name in sorted(self.alive):
            self.apply(name, self.nodes[name].tick(self.now))

    def broadcast(self, sender: str, message: object) -> None:
        assert isinstance(message, Message)
        msg = message.with_field("src", sender)
        for other in sorted(self.alive - {sender}):
            if other in self.nodes and (sender, other) not in self.blocked:
                self.apply(other, self.nodes[other].message(msg, self.now))

    def apply(self, name: str, actions: list[Action]) -> None:
        for action in actions:
            self.journal.append((self.now, name, action))
            if self.check_safety:
                self.assert_never_twice()
            if name not in self.nodes:
                continue
            sched = self.nodes[name]
            if isinstance(action, Send):
                self.broadcast(name, action.message)
            elif isinstance(action, Acquire):
                ok = (name, action.group) not in self.fail_start
                self.apply(name, sched.done(action.group, self.now, ok=ok, detail="exit 1"))
            elif isinstance(action, Release):
                ok = (name, action.group) not in self.fail_stop
                self.apply(name, sched.done(action.group, self.now, ok=ok, clean=ok))
            elif isinstance(action, Refresh):
                self.apply(name, sched.refreshed(action.group, self.now))

    def assert_never_twice(self) -> None:
        """The safety property: a group is never started or running on two nodes at once."""
        active = (GroupState.STARTING, GroupState.RUNNING)
        for key in (g.key for g in self.config.groups):
            on = [n for n, s in self.nodes.items() if key in s.mine and s.mine[key].state in active]
            assert len(on) <= 1, f"{key} active on {on} at t={self.now}"

    def holders(self) -> dict[str, str | None]:
        """group -> the node running it, asserting that no group runs twice."""
        result: dict[str, str | None] = {}
        for key in (g.key for g in self.config.groups):
            running = [
                n
                for n, s in self.nodes.items()
                if key in s.mine  # a node that has not reloaded a new group yet
                and s.mine[key].state in (GroupState.RUNNING, GroupState.FAILED)
            ]
            assert len(running) <= 1, f"{key} runs on {running}"
            result[key] = running[0] if running else None
        return result

    def decisions(self, name: str) -> list[str]:
        return [a.text for _, n, a in self.journal if n == name and isinstance(a, Decision)]

    def acquisitions(self) -> list[tuple[float, str, str]]:
        return [(t, n, a.group) for t, n, a in self.journal if isinstance(a, Acquire)]
