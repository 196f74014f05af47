"""What a failed monitor makes this node do: pure recovery policy, no I/O, no clock.

docs/resources.md#recovery. The resource manager feeds monitor results in and
carries the decisions out; every time is passed in (seconds on one monotonic
clock, the trio clock in the daemon), so the rules are tested under virtual time.

* A **fail count** is kept per (resource, node): the times of its failures. With
  a ``failure_timeout``, failures older than that are forgotten (Pacemaker's
  failure-timeout; Heartbeat itself never watched a running resource).
* A failure of a resource of a group held here gives a :class:`Decision`:

  - ``on_fail = "restart"``: restart in place: stop the failed resource and every
    resource after it in the group, right to left, then start them again left to
    right (what depends on the failed resource goes down with it, as when the
    group is released);
  - when the resource's fail count on this node reaches ``migration_threshold``,
    or at once with ``on_fail = "failover"``: **move**: this node refuses the
    group (until cleanup, or until the failure is older than ``failure_timeout``)
    and gives it up through the same path as a failed start;
  - ``on_fail = "ignore"``: the failure is counted and reported, nothing else.

* **Maintenance mode**: no decision acts and nothing is counted.
* **Cleanup** forgets fail counts and refusals (of a group, or of all).

Every decision carries its reason as a sentence for the log, status and events:
``apache2 failed 3 times in 10m on prime: moving 198.51.100.10/24/eth0``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from pulse.config.durations import format_ms
from pulse.config.model import OnFail, ResourceGroup


class Action(enum.StrEnum):
    RESTART = "restart"  # restart in place: Decision.stop, then Decision.start
    MOVE = "move"  # this node refuses the group and gives it up
    IGNORE = "ignore"  # counted and reported only
    NONE = "none"  # nothing at all (maintenance mode, or a resource not held here)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourcePolicy:
    """The recovery settings of one resource, its group's unless it overrides them."""

    on_fail: OnFail = OnFail.RESTART
    migration_threshold: int = 3
    failure_timeout: float | None = None  # seconds; None: failures are never forgotten

    @classmethod
    def of(cls, group: ResourceGroup, resource: str) -> ResourcePolicy:
        spec = next((r for r in group.resources if r.raw == resource), None)
        on_fail = group.on_fail if spec is None else group.on_fail_of(spec)
        timeout = None if group.failure_timeout is None else group.failure_timeout / 1000
        return cls(
            on_fail=on_fail,
            migration_threshold=group.migration_threshold,
            failure_timeout=timeout,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What to do about one failure, and why.

    ``stop`` (right to left) and ``start`` (left to right) are the resources to
    restart for :attr:`Action.RESTART`, empty otherwise. ``count`` is the
    resource's fail count on ``node`` after this failure.
    """

    action: Action
    group: str
    resource: str
    node: str
    count: int
    reason: str
    stop: tuple[str, ...] = ()
    start: tuple[str, ...] = ()


Key = tuple[str, str]  # (resource, node)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryState:
    """Fail counts, refusals and maintenance mode; every change returns a new state.

    ``failures`` holds the times of each (resource, node)'s failures in the order
    they were recorded; ``refused`` the time each (group, node) was refused by a
    move; ``failing`` the (resource, node) pairs whose last monitor failed (a
    later success is a recovery).
    """

    failures: Mapping[Key, tuple[float, ...]] = field(default_factory=dict)
    refused: Mapping[tuple[str, str], float] = field(default_factory=dict)
    failing: frozenset[Key] = frozenset()
    maintenance: bool = False

    # ----------------------------------------------------------------- queries

    def fail_count(
        self, resource: str, node: str, *, now: float, failure_timeout: float | None = None
    ) -> int:
        """How many failures of ``resource`` on ``node`` are not yet forgotten at ``now``."""
        return len(_recent(self.failures.get((resource, node), ()), now, failure_timeout))

    def fail_counts(
        self, resource: str, *, now: float, failure_timeout: float | None = None
    ) -> dict[str, int]:
        """Node -> fail count of ``resource`` (nodes with a count above zero), for status."""
        counts = {
            node: self.fail_count(resource, node, now=now, failure_timeout=failure_timeout)
            for (name, node) in self.failures
            if name == resource
        }
        return {node: n for node, n in sorted(counts.items()) if n > 0}

    def refuses(
        self, group: str, node: str, *, now: float, failure_timeout: float | None = None
    ) -> bool:
        """Does ``node`` refuse ``group`` because its failures moved it away?"""
        since = self.refused.get((group, node))
        if since is None:
            return False
        return failure_timeout is None or now - since < failure_timeout

    def refusal_ends(self, group: ResourceGroup, node: str) -> float | None:
        """When ``node``'s refusal of ``group`` (a move) is forgotten by ``failure_timeout``:
        None when it does not refuse it, or when no failure_timeout is set (cleanup only)."""
        since = self.refused.get((group.key, node))
        if since is None or group.failure_timeout is None:
            return None
        return since + group.failure_timeout / 1000

    # ----------------------------------------------------------------- changes

    def expire(self, *, now: float, groups: Iterable[ResourceGroup]) -> RecoveryState:
        """Forget the failures (and refusals) older than their group's ``failure_timeout``.

        A resource of no group in ``groups`` (removed by a reload) is forgotten.
        """
        window: dict[str, float | None] = {}
        for group in groups:
            limit = None if group.failure_timeout is None else group.failure_timeout / 1000
            window.update((r.raw, limit) for r in group.resources)
        failures = {
            key: kept
            for key, times in self.failures.items()
            if key[0] in window and (kept := _recent(times, now, window[key[0]]))
        }
        refused = {
            key: since
            for key, since in self.refused.items()
            if key[0] in window and ((limit := window[key[0]]) is None or now - since < limit)
        }
        if failures == dict(self.failures) and refused == dict(self.refused):
            return self
        return replace(self, failures=failures, refused=refused)

    def cleanup(self, group: ResourceGroup | None = None) -> RecoveryState:
        """Forget fail counts and refusals of ``group``'s resources on every node (or all)."""
        if group is None:
            return replace(self, failures={}, refused={}, failing=frozenset())
        names = {r.raw for r in group.resources}
        return replace(
            self,
            failures={k: v for k, v in self.failures.items() if k[0] not in names},
            refused={k: v for k, v in self.refused.items() if k[0] != group.key},
            failing=frozenset(k for k in self.failing if k[0] not in names),
        )

    def set_maintenance(self, on: bool) -> RecoveryState:
        return self if self.maintenance is on else replace(self, maintenance=on)

    def succeeded(self, resource: str, node: str) -> tuple[RecoveryState, bool]:
        """A monitor found ``resource`` running on ``node``: (new state, is it a recovery?)."""
        key = (resource, node)
        if key not in self.failing:
            return self, False
        return replace(self, failing=self.failing - {key}), True

    def failed(
        self, group: ResourceGroup, resource: str, node: str, *, now: float, what: str = "failed"
    ) -> tuple[RecoveryState, Decision]:
        """A monitor of ``resource`` (a member of ``group``, held by ``node``) failed at ``now``.

        ``what`` is how the failure reads in the reason (``failed``, ``is not running``).
        """
        key = (resource, node)
        if self.maintenance:
            return self, Decision(
                action=Action.NONE,
                group=group.key,
                resource=resource,
                node=node,
                count=self.fail_count(resource, node, now=now),
                reason=f"{resource} {what} on {node}: maintenance mode, nothing is done",
            )
        policy = ResourcePolicy.of(group, resource)
        times = (*_recent(self.failures.get(key, ()), now, policy.failure_timeout), now)
        state = replace(
            self,
            failures={**self.failures, key: times},
            failing=self.failing | {key},
        )
        count = len(times)
        told = _told(resource, what, count, policy.failure_timeout, node)
        base = Decision(
            action=Action.IGNORE, group=group.key, resource=resource, node=node, count=count,
            reason="",
        )  # fmt: skip
        if policy.on_fail is OnFail.IGNORE:
            return state, replace(base, reason=f"{told}: on_fail is ignore, nothing is done")
        if policy.on_fail is OnFail.FAILOVER or count >= policy.migration_threshold:
            why = (
                "on_fail is failover"
                if policy.on_fail is OnFail.FAILOVER
                else f"migration_threshold {policy.migration_threshold} reached"
            )
            state = replace(state, refused={**state.refused, (group.key, node): now})
            return state, replace(
                base, action=Action.MOVE, reason=f"{told}: moving {group.key} ({why})"
            )
        stop, start = restart_plan(group, resource)
        return state, replace(
            base,
            action=Action.RESTART,
            reason=(
                f"{told}: restarting {', '.join(start)} in place "
                f"({count} of {policy.migration_threshold} before {group.key} moves)"
            ),
            stop=stop,
            start=start,
        )


def restart_plan(group: ResourceGroup, resource: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(stop, start) to restart ``resource`` in place: it and every later one of the group,
    stopped right to left, started left to right."""
    names = [r.raw for r in group.resources]
    if resource not in names:
        raise ValueError(f"{resource} is not a resource of {group.key}")
    tail = tuple(names[names.index(resource) :])
    return tuple(reversed(tail)), tail


def duration_text(seconds: float) -> str:
    """``10m``, ``1h``, ``90s``, ``1500ms``: how a window reads in a reason."""
    ms = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return format_ms(ms)


def _recent(times: Iterable[float], now: float, window: float | None) -> tuple[float, ...]:
    if window is None:
        return tuple(times)
    return tuple(t for t in times if now - t < window)


def _told(resource: str, what: str, count: int, window: float | None, node: str) -> str:
    times = "once" if count == 1 else f"{count} times"
    span = "" if window is None else f" in {duration_text(window)}"
    if what == "failed":
        return f"{resource} failed {times}{span} on {node}"
    return f"{resource} {what} on {node} ({times}{span})"


__all__ = ["Action", "Decision", "RecoveryState", "ResourcePolicy", "duration_text", "restart_plan"]
