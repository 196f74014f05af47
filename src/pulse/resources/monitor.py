"""Monitor operations: one check of one agent, and the runner that repeats them.

* :func:`monitor_agent` runs one monitor under its timeout and always returns a
  :class:`~pulse.resources.base.MonitorResult`: an agent's own ``monitor`` when
  it has one (every built-in agent does), else its ``status`` (a plugin agent
  written before monitors existed). An exception, a hung check or a script
  killed at its deadline is a failure with the reason, never an exception.
* :class:`MonitorRunner` is a trio object with one task per monitored resource,
  each on its own interval and timeout, sending every result into a memory
  channel as an :class:`Observation`. The resource manager tells it which groups
  it holds (:meth:`MonitorRunner.watch` / :meth:`MonitorRunner.unwatch`) and
  pauses a group while it is starting, stopping or moving
  (:meth:`MonitorRunner.paused`); maintenance mode pauses every group
  (:meth:`MonitorRunner.set_maintenance`). A paused group's checks in flight are
  cancelled (a script's process group is killed) and their results dropped, so
  nothing stale reaches the recovery policy.

The runner never touches the heartbeat path: its tasks only run agents'
monitors, which are subprocesses or non-blocking netlink requests, and a full
results channel only holds back the monitor that wants to send.
docs/resources.md#monitoring.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import trio

from pulse.resources.base import (
    MonitorResult,
    MonitorState,
    ResourceAgent,
    ResourceError,
    monitor_result,
)

log = logging.getLogger("pulse.resources.monitor")


async def monitor_agent(agent: ResourceAgent, *, timeout: float) -> MonitorResult:
    """One monitor of ``agent``, bounded by ``timeout`` seconds (see the module docstring).

    A script agent's process group is killed when the deadline cancels it (SIGTERM,
    then SIGKILL after the agent's ``kill_grace``), so this returns at the latest
    ``timeout`` plus that grace after it was called.
    """
    raw = agent.spec.raw
    check = getattr(agent, "monitor", None)
    with trio.move_on_after(timeout) as scope:
        try:
            if check is None:
                outcome: object = await agent.status()
            else:
                outcome = await check(timeout)
        except ResourceError as exc:
            return monitor_result(raw, MonitorState.FAILED, reason=exc.reason)
        except Exception as exc:
            log.exception("The monitor of %s crashed", raw)
            return monitor_result(
                raw, MonitorState.FAILED, reason=f"monitor crashed: {type(exc).__name__}: {exc}"
            )
    if scope.cancelled_caught:
        return monitor_result(
            raw, MonitorState.FAILED, reason=f"monitor timed out after {timeout:g}s"
        )
    if isinstance(outcome, MonitorResult):
        return outcome
    if outcome is True:
        return monitor_result(raw, MonitorState.RUNNING)
    if outcome is False:
        return monitor_result(raw, MonitorState.NOT_RUNNING, reason="the agent says not running")
    return monitor_result(
        raw,
        MonitorState.FAILED,
        reason=f"monitor returned {type(outcome).__name__}, not a bool or a MonitorResult",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """One monitored resource: its agent, every how many seconds, and for how long at most."""

    agent: ResourceAgent
    interval: float
    timeout: float

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError(f"interval and timeout must be above 0: {self}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """A monitor's result, with the group it belongs to."""

    group: str
    result: MonitorResult


@dataclass(slots=True)
class _Group:
    watches: tuple[Watch, ...]
    pauses: int = 0
    scope: trio.CancelScope | None = None
    runs: int = field(default=0)  # how many times its tasks were (re)started


class MonitorRunner:
    """Repeats the monitors of the groups this node holds (see the module docstring).

    Use: ``runner = MonitorRunner(send)``, ``nursery.start_soon(runner.run)``
    (or ``await nursery.start(runner.run)``), then ``watch``/``unwatch``/
    ``paused``. Calls made before ``run`` started take effect when it does.
    The first check of a resource comes one interval after its group is watched
    or resumed: a resource that was just started is given that long to settle.
    """

    def __init__(self, results: trio.MemorySendChannel[Observation]) -> None:
        self._results = results
        self._groups: dict[str, _Group] = {}
        self._maintenance = False
        self._nursery: trio.Nursery | None = None

    # ----------------------------------------------------------------- control

    def watch(self, group: str, watches: Sequence[Watch]) -> None:
        """Monitor ``group``'s resources from now on (replacing what was watched)."""
        self._stop(group)
        entry = self._groups.setdefault(group, _Group(watches=()))
        entry.watches = tuple(watches)
        self._sync(group)

    def unwatch(self, group: str) -> None:
        """Stop monitoring ``group`` (released, moved away or FAILED here)."""
        self._stop(group)
        entry = self._groups.get(group)
        if entry is not None and entry.pauses == 0:
            del self._groups[group]
        elif entry is not None:
            entry.watches = ()

    @contextlib.contextmanager
    def paused(self, group: str) -> Iterator[None]:
        """No monitor of ``group`` runs inside this block (nesting counts)."""
        entry = self._groups.setdefault(group, _Group(watches=()))
        entry.pauses += 1
        self._stop(group)
        try:
            yield
        finally:
            entry.pauses -= 1
            if self._groups.get(group) is entry:
                if entry.pauses == 0 and not entry.watches:
                    del self._groups[group]
                else:
                    self._sync(group)

    def set_maintenance(self, on: bool) -> None:
        """Maintenance mode: no monitor runs anywhere while it is on."""
        self._maintenance = on
        for group in list(self._groups):
            self._sync(group)

    @property
    def maintenance(self) -> bool:
        return self._maintenance

    def watching(self) -> dict[str, tuple[str, ...]]:
        """Group -> its monitored resources whose checks are running now (for status)."""
        return {
            name: tuple(w.agent.spec.raw for w in entry.watches)
            for name, entry in self._groups.items()
            if entry.scope is not None
        }

    # ----------------------------------------------------------------- tasks

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; the monitor tasks live in this task's nursery."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for group in list(self._groups):
                    self._sync(group)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for entry in self._groups.values():
                entry.scope = None

    def _stop(self, group: str) -> None:
        entry = self._groups.get(group)
        if entry is not None and entry.scope is not None:
            entry.scope.cancel()
            entry.scope = None

    def _sync(self, group: str) -> None:
        entry = self._groups[group]
        wanted = bool(entry.watches) and entry.pauses == 0 and not self._maintenance
        if not wanted:
            self._stop(group)
            return
        if entry.scope is not None or self._nursery is None:
            return
        scope = trio.CancelScope()
        entry.scope = scope
        entry.runs += 1
        self._nursery.start_soon(self._group_task, group, entry.watches, scope)

    async def _group_task(
        self, group: str, watches: tuple[Watch, ...], scope: trio.CancelScope
    ) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                for watch in watches:
                    nursery.start_soon(self._repeat, group, watch)

    async def _repeat(self, group: str, watch: Watch) -> None:
        while True:
            await trio.sleep(watch.interval)
            result = await monitor_agent(watch.agent, timeout=watch.timeout)
            if result.state is not MonitorState.RUNNING:
                log.warning(
                    "monitor of %s (%s): %s%s",
                    result.resource,
                    group,
                    result.state.value,
                    f": {result.reason}" if result.reason else "",
                )
            await self._results.send(Observation(group=group, result=result))


async def probe_group(
    agents: Sequence[ResourceAgent], *, timeout: float
) -> tuple[MonitorResult, ...]:
    """The start-up probe: monitor each resource of a group once, left to right."""
    return tuple([await monitor_agent(agent, timeout=timeout) for agent in agents])


__all__ = ["MonitorRunner", "Observation", "Watch", "monitor_agent", "probe_group"]
