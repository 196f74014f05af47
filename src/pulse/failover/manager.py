"""The resource manager: the trio shell around :class:`pulse.failover.policy.Scheduler`.

It turns membership events into scheduler facts, runs the scheduler's Acquire and
Release actions through the resource agents (one task per group operation, so a slow
group never holds up another), sends the scheduler's messages through the daemon,
and logs every decision once, in words.

The scheduler is only ever touched from :meth:`ResourceManager.run`'s task: group
operations report back through a channel, control commands through another.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from pulse.config.model import Config, ResourceGroup
from pulse.failover.actions import CLAIMED, GroupState
from pulse.failover.policy import (
    Acquire,
    Action,
    Cleanup,
    Decision,
    Maintenance,
    Refresh,
    Release,
    Scheduler,
    SchedulerView,
    Send,
    StandbyRefused,
)
from pulse.failover.recovery import Action as Recovery
from pulse.failover.recovery import RecoveryState, duration_text
from pulse.plugin.api import ClusterEvent, FencingDevice, TakeoverCheck
from pulse.plugin.bus import (
    EventBus,
    PluginStats,
    can_fence,
    fence,
    run_check,
    run_checks,
    run_device,
)
from pulse.protocol.events import (
    CommsUp,
    CutOff,
    Delivered,
    NodeStatus,
    NodeStatusChanged,
    Output,
)
from pulse.resources import (
    MonitorResult,
    MonitorRunner,
    MonitorState,
    Observation,
    ResourceAgent,
    Watch,
    acquire_group,
    probe_group,
    release_group,
    restart_in_place,
)
from pulse.resources.base import wall_clock_iso
from pulse.wire.message import Message

log = logging.getLogger("pulse")

ALIVE = (NodeStatus.UP, NodeStatus.ACTIVE)
SHUTDOWN_TIMEOUT = 600.0  # seconds to release everything before giving up on a stop
TRANSITIONS = 20  # decisions kept per group for status
PROBE_TIMEOUT = 20.0  # seconds per resource of the start-up probe, for an unmonitored group


@dataclass(frozen=True, slots=True)
class _Done:
    group: str
    ok: bool
    clean: bool
    detail: str


@dataclass(frozen=True, slots=True)
class _Refreshed:
    group: str


@dataclass(frozen=True, slots=True)
class _Fenced:
    node: str
    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class _Restarted:
    group: str
    resource: str
    ok: bool
    clean: bool
    detail: str


@dataclass(frozen=True, slots=True)
class _RefusalDue:
    """The failure_timeout of a move of *group* away from this node may have passed."""

    group: str


@dataclass(frozen=True, slots=True)
class _Probed:
    """The start-up probe is over: groups of which a resource runs here."""

    running: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Command:
    verb: str  # "standby" | "takeover" | "shutdown" | "cleanup" | "maintenance"
    what: str
    reply: Callable[[str | None], None]  # None = accepted, text = refused


@dataclass(frozen=True, slots=True)
class _Retune:
    groups: tuple[ResourceGroup, ...]


@dataclass(frozen=True, slots=True)
class _AddGroups:
    groups: tuple[ResourceGroup, ...]
    agents: Mapping[str, Sequence[ResourceAgent]]


@dataclass(frozen=True, slots=True)
class _GiveUp:
    """A takeover check's ``control.release`` / ``control.readmit`` (GroupControl)."""

    group: str
    reason: str | None  # None: readmit


_Item = (
    Output
    | _Done
    | _Command
    | _Fenced
    | _Refreshed
    | _AddGroups
    | _Retune
    | _GiveUp
    | Observation
    | _Restarted
    | _Probed
    | _RefusalDue
)


@dataclass(slots=True)
class GroupStatistics:
    """What this node did with its groups since it started (metrics, status)."""

    acquired: collections.Counter[str] = field(default_factory=collections.Counter)
    released: collections.Counter[str] = field(default_factory=collections.Counter)
    acquire_failed: collections.Counter[str] = field(default_factory=collections.Counter)
    release_failed: collections.Counter[str] = field(default_factory=collections.Counter)
    takeovers: collections.Counter[str] = field(default_factory=collections.Counter)
    last_failover: float | None = None  # Unix time

    def record(self, kind: str, group: str, reason: str) -> None:
        getattr(self, kind.replace("-", "_"))[group] += 1
        if kind == "acquired" and reason.startswith("took over"):
            cause = "node-dead" if " dead at " in reason else "other"
            if "(takeover)" in reason:
                cause = "takeover"
            self.takeovers[cause] += 1
            self.last_failover = time.time()

    def as_json(self) -> dict[str, Any]:
        return {
            "acquired": dict(self.acquired),
            "released": dict(self.released),
            "acquire_failed": dict(self.acquire_failed),
            "release_failed": dict(self.release_failed),
            "takeovers": dict(self.takeovers),
            "last_failover": self.last_failover,
        }


class ResourceManager:
    """Runs this node's share of the haresources groups."""

    def __init__(
        self,
        *,
        config: Config,
        local: str,
        agents: Mapping[str, Sequence[ResourceAgent]],
        send: Callable[[Message], None],
        scheduler: Scheduler | None = None,
        stop_retries: int = 10,
        retry_delay: float = 1.0,
        bus: EventBus | None = None,
        checks: Sequence[TakeoverCheck] = (),
        fencing: Sequence[FencingDevice] = (),
        fence_retry: float = 5.0,
    ) -> None:
        self.config = config
        self.local = local
        self.agents = agents
        self._send = send
        self.scheduler = scheduler or Scheduler(config=config, local=local, now=trio.current_time())
        self.stop_retries = stop_retries
        self.retry_delay = retry_delay
        self.last_decision = self.scheduler.decision
        # One inbox for everything the scheduler reacts to, so it is only ever
        # touched from run(): membership events (the daemon publishes into it),
        # finished group operations and control commands.
        self.inbox, self._inbox_rx = trio.open_memory_channel[_Item](1024)
        self.bus = bus
        self.checks = list(checks)
        self.fencing = list(fencing)
        self.fence_retry = fence_retry
        self.plugin_stats: dict[str, PluginStats] = {}
        self.fence_state: dict[str, str] = {}  # node -> what fencing it is doing / did
        self._fencing: dict[str, trio.CancelScope] = {}
        self._released = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.statistics = GroupStatistics()
        # Monitoring and recovery (docs/resources.md#monitoring): the runner's results
        # come through the inbox; the policy is pure, kept here and changed only in run().
        self._observed, self._observed_rx = trio.open_memory_channel[Observation](64)
        self.monitors = MonitorRunner(self._observed)
        self.recovery = RecoveryState()
        self._counted: RecoveryState = self.recovery  # what the last report's counts came from
        self.last_monitor: dict[str, MonitorResult] = {}
        self.last_failure: dict[str, MonitorResult] = {}
        self._busy: dict[str, trio.Lock] = {}  # one group operation at a time per group
        # The last TRANSITIONS decisions and recoveries of each group, with wall-clock time.
        self.transitions: dict[str, collections.deque[dict[str, str]]] = {}
        self._restarting: set[str] = set()
        self._probe_started = False

    # ------------------------------------------------------------------ API

    async def command(self, verb: str, what: str = "all") -> str | None:
        """standby/takeover/cleanup/maintenance from pulsectl; None when accepted, else why not."""
        result: list[str | None] = []
        answered = trio.Event()

        def reply(text: str | None) -> None:
            result.append(text)
            answered.set()

        await self.inbox.send(_Command(verb, what, reply))
        await answered.wait()
        return result[0]

    async def add_groups(
        self, groups: Sequence[ResourceGroup], agents: Mapping[str, Sequence[ResourceAgent]]
    ) -> None:
        """A reload added *groups*, run by *agents* (pulse.reload)."""
        await self.inbox.send(_AddGroups(tuple(groups), agents))

    async def retune_groups(self, groups: Sequence[ResourceGroup]) -> None:
        """A reload changed *groups*' monitoring settings (pulse.reload)."""
        await self.inbox.send(_Retune(tuple(groups)))

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> bool:
        """Release every group (graceful stop); True when all were released."""
        await self.command("shutdown")
        with trio.move_on_after(timeout):
            await self._released.wait()
            return True
        log.error("Resources still held after %.0fs; stopping anyway", timeout)
        return False

    def view(self) -> SchedulerView:
        return self.scheduler.view()

    # ------------------------------------------------------------------ task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for device in self.fencing:
                nursery.start_soon(run_device, device)
            await nursery.start(self.monitors.run)
            nursery.start_soon(self._forward_observations)
            for check in self.checks:
                nursery.start_soon(run_check, check, _Control(self))
            # The start-up probe runs once communications are up (_handle, CommsUp).
            probe = any(self.agents.get(key) for key in self.scheduler.groups)
            if probe:
                self.scheduler.probe_pending()
            task_status.started()
            while True:
                with trio.move_on_at(self.scheduler.next_deadline()):
                    self._handle(await self._inbox_rx.receive())
                    continue
                self._apply(self.scheduler.tick(trio.current_time()))

    async def _forward_observations(self) -> None:
        async for observation in self._observed_rx:
            await self.inbox.send(observation)

    def _publish(self, kind: str, node: str, group: str | None = None, reason: str = "") -> None:
        if self.bus is None:
            return
        words: tuple[str, ...] = ()
        if group is not None and group in self.scheduler.groups:
            words = tuple(r.raw for r in self.scheduler.groups[group].resources)
        self.bus.publish(
            ClusterEvent(
                kind=kind, node=node, local=self.local, group=group, resources=words, reason=reason
            )
        )

    def _handle(self, item: _Item) -> None:
        now = trio.current_time()
        sched = self.scheduler
        if isinstance(item, _Done):
            self._apply(
                sched.done(item.group, now, ok=item.ok, clean=item.clean, detail=item.detail)
            )
        elif isinstance(item, _Command):
            self._command(item, now)
        elif isinstance(item, NodeStatusChanged):
            # The scheduler may know a peer is alive before its first status (it talked
            # to us), so compare with what the scheduler believes, not with item.old.
            peer = sched.peers.get(item.node)
            if peer is not None and (item.new in ALIVE or item.new is NodeStatus.DEAD):
                alive = item.new in ALIVE
                if alive != peer.alive or (alive and item.node in self._fencing):
                    self._node_changed(item.node, alive, now)
            elif peer is None and item.node != self.local:
                # A ping node: the built-in ipfail counts the reachable ones.
                self._apply(sched.ping_status(item.node, item.new is NodeStatus.PING, now))
        elif isinstance(item, _Fenced):
            self._fenced(item, now)
        elif isinstance(item, _Refreshed):
            self._apply(sched.refreshed(item.group, now))
        elif isinstance(item, _GiveUp):
            self._give_up(item, now)
        elif isinstance(item, Observation):
            self._observed_result(item, now)
        elif isinstance(item, _Restarted):
            self._restarted(item, now)
        elif isinstance(item, _Probed):
            self._apply(sched.probed(item.running, now))
        elif isinstance(item, _RefusalDue):
            self._refusal_due(item.group, now)
        elif isinstance(item, CommsUp):
            if sched.probing and not self._probe_started:
                self._probe_started = True
                assert self._nursery is not None
                self._nursery.start_soon(self._probe)
            self._apply(sched.comms_up(now, item.peers))
        elif isinstance(item, Delivered):
            self._apply(sched.message(item.message, now))
        elif isinstance(item, CutOff):
            self._apply(sched.set_cut_off(item.cut_off, now, detail=item.detail))
        elif isinstance(item, _Retune):
            sched.retune(item.groups)
            for group in item.groups:
                if sched.mine[group.key].state is GroupState.RUNNING:
                    # The same resources: their monitors restart with the new settings
                    # (a group in an operation is paused, and watched again after it).
                    self.monitors.watch(group.key, self._watches(group.key))
        elif isinstance(item, _AddGroups):
            self.agents = {**self.agents, **item.agents}
            self._apply(sched.add_groups(item.groups, now))
        if self.recovery is not self._counted:
            # A failure, a recovery, a cleanup or an expiry: the peers' status shows our
            # fail counts from our reports (docs/resources.md#cleanup-and-maintenance).
            self._counted = self.recovery
            self._apply(sched.set_fail_counts(self.own_fail_counts(now)))
        if sched.leaving and sched.is_released():
            self._released.set()

    def _node_changed(self, node: str, alive: bool, now: float) -> None:
        when = time.strftime("%H:%M:%S")
        sched = self.scheduler
        if alive:
            scope = self._fencing.pop(node, None)
            if scope is not None:
                scope.cancel()
                self.fence_state[node] = "fencing abandoned: the node came back"
                log.warning("%s is alive again: fencing abandoned", node)
            self._publish("node-up", node)
            self._apply(sched.node_status(node, True, now, when=when))
            return
        if node in self._fencing:
            return  # already being fenced: the takeover waits for that
        self._publish("node-dead", node, reason=f"{node} dead at {when}")
        if sched.maintenance:
            log.warning("%s is dead; maintenance mode: nothing is done about it", node)
        elif self.fencing and sched.may_hold(node):
            if can_fence(self.fencing, node):
                assert self._nursery is not None
                scope = trio.CancelScope()
                self._fencing[node] = scope
                self.fence_state[node] = "fencing"
                log.info("%s may hold resources: fencing it before taking over", node)
                self._nursery.start_soon(self._fence, node, scope)
                return
            log.warning("No STONITH device can fence %s; taking over anyway.", node)
        self._apply(sched.node_status(node, False, now, when=when))

    async def _fence(self, node: str, scope: trio.CancelScope) -> None:
        with scope:
            while True:
                ok, text = await fence(self.fencing, node, self.plugin_stats)
                await self.inbox.send(_Fenced(node, ok, text))
                if ok:
                    return
                await trio.sleep(self.fence_retry)

    def _fenced(self, item: _Fenced, now: float) -> None:
        if item.node not in self._fencing:
            return  # abandoned meanwhile
        if not item.ok:
            self.fence_state[item.node] = (
                f"fencing failed, retrying every {self.fence_retry:g}s: {item.text}"
            )
            log.error("STONITH of %s failed: %s", item.node, item.text)
            self._publish("fence-failed", item.node, reason=item.text)
            self._send(Message.of(("t", "stonith"), ("node", item.node), ("result", "bad")))
            return
        del self._fencing[item.node]
        self.fence_state[item.node] = item.text
        log.info("%s", item.text)
        self._publish("fenced", item.node, reason=item.text)
        self._send(Message.of(("t", "stonith"), ("node", item.node), ("result", "OK")))
        when = time.strftime("%H:%M:%S")
        self._apply(self.scheduler.node_status(item.node, False, now, when=when))

    # ------------------------------------------------------------------ GroupControl

    def _give_up(self, item: _GiveUp, now: float) -> None:
        """A takeover check gives a group up here (a lease it lost) or lets it back."""
        sched = self.scheduler
        if item.reason is None:
            self._apply(sched.readmit(item.group, now))
        else:
            actions = sched.give_up(item.group, item.reason, now)
            if actions:
                log.warning("%s", item.reason)
            self._apply(actions)

    def _command(self, cmd: _Command, now: float) -> None:
        try:
            actions = self.scheduler.operator.command(cmd.verb, cmd.what, now)
        except (StandbyRefused, ValueError) as exc:
            cmd.reply(str(exc))
            return
        cmd.reply(None)
        self._apply(actions)

    def _apply(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action.message)
            elif isinstance(action, Decision):
                self.last_decision = action.text
                log.info("%s", action.text)
                if action.group is not None:
                    self._transition(action.group, action.text)
            elif isinstance(action, Acquire | Release):
                assert self._nursery is not None
                self._nursery.start_soon(self._operate, action)
            elif isinstance(action, Refresh):
                assert self._nursery is not None
                log.info("%s", action.reason)
                self._nursery.start_soon(self._refresh_and_report, action.group)
            elif isinstance(action, Maintenance):
                self.monitors.set_maintenance(action.on)
                self.recovery = self.recovery.set_maintenance(action.on)
            elif isinstance(action, Cleanup):
                for key in action.groups:
                    group = self.scheduler.groups[key]
                    self.recovery = self.recovery.cleanup(group)
                    for spec in group.resources:
                        self.last_failure.pop(spec.raw, None)

    async def _refresh_and_report(self, group: str) -> None:
        # The first announcement of each address is out when refresh() returns (the
        # rest of the series goes on in the background): the scheduler may now tell a
        # node that also runs the group to release it.
        await self._refresh(self.agents[group], ())
        await self.inbox.send(_Refreshed(group))

    async def _refresh(self, agents: Sequence[ResourceAgent], skip: Sequence[str]) -> None:
        for agent in agents:
            refresh = getattr(agent, "refresh", None)
            if refresh is None or agent.spec.raw in skip:
                continue
            try:
                await refresh()
            except Exception:  # best effort: the address is up either way
                log.exception("re-announcing %s failed", agent.spec.raw)

    def _transition(self, group: str, text: str) -> None:
        history = self.transitions.setdefault(group, collections.deque(maxlen=TRANSITIONS))
        history.append({"when": wall_clock_iso(), "what": text})

    def _lock(self, key: str) -> trio.Lock:
        return self._busy.setdefault(key, trio.Lock())

    def _watches(self, key: str) -> list[Watch]:
        group = self.scheduler.groups[key]
        watches: list[Watch] = []
        for agent, spec in zip(self.agents[key], group.resources, strict=False):
            monitor = group.monitor_of(spec)
            if monitor is not None:
                seconds = (monitor.interval / 1000, monitor.timeout / 1000)
                watches.append(Watch(agent=agent, interval=seconds[0], timeout=seconds[1]))
        return watches

    async def _operate(self, action: Acquire | Release) -> None:
        key = action.group
        async with self._lock(key):
            with self.monitors.paused(key):
                if isinstance(action, Release):
                    self.monitors.unwatch(key)
                done = await self._operate_group(action)
                if isinstance(action, Acquire) and done.ok:
                    self.monitors.watch(key, self._watches(key))
        await self.inbox.send(done)

    async def _operate_group(self, action: Acquire | Release) -> _Done:
        key = action.group
        agents = self.agents[key]
        preferred = self.scheduler.groups[key].node
        try:
            if isinstance(action, Acquire):
                refusal = await run_checks(
                    self.checks, self.scheduler.groups[key], self.plugin_stats
                )
                if refusal is not None:
                    log.warning("not acquiring %s: %s", key, refusal)
                    self._publish("acquire-failed", self.local, key, refusal)
                    return _Done(key, False, True, f"refused by {refusal}")
                result = await acquire_group(
                    agents,
                    log=log,
                    node=preferred,
                    stop_retries=self.stop_retries,
                    retry_delay=self.retry_delay,
                )
                clean = result.ok or not result.stuck
                if result.ok:
                    # Resources found already running were not started (so not
                    # announced): tell the LAN again where they are.
                    await self._refresh(agents, result.started)
            else:
                result = await release_group(
                    agents,
                    log=log,
                    node=preferred,
                    stop_retries=self.stop_retries,
                    retry_delay=self.retry_delay,
                )
                clean = result.ok
            done = _Done(key, result.ok, clean, result.reason)
            if isinstance(action, Acquire):
                kind = "acquired" if result.ok else "acquire-failed"
            else:
                kind = "released" if result.ok else "release-failed"
            self.statistics.record(kind, key, action.reason)
            self._publish(kind, self.local, key, action.reason if result.ok else result.reason)
        except Exception as exc:  # an agent bug: the group's state is unknown, say so
            log.exception("internal error while operating on %s", key)
            done = _Done(key, False, False, f"internal error: {exc}")
        return done

    # ------------------------------------------------------------------ monitoring

    async def _probe(self) -> None:
        """The start-up probe (docs/resources.md#start-up-probe): every resource of
        every group is monitored once, groups side by side, before this node takes or
        gives anything. A resource found running marks its group as running here."""
        running: list[str] = []

        async def one(key: str) -> None:
            agents = self.agents.get(key, ())
            group = self.scheduler.groups[key]
            timeout = group.monitor.timeout / 1000 if group.monitor is not None else PROBE_TIMEOUT
            results = await probe_group(agents, timeout=timeout)
            for spec, result in zip(group.resources, results, strict=False):
                if group.monitor_of(spec) is not None:  # status shows monitored ones only
                    self.last_monitor[result.resource] = result
            if any(r.state is MonitorState.RUNNING for r in results):
                running.append(key)

        async with trio.open_nursery() as nursery:
            for key in self.scheduler.groups:
                nursery.start_soon(one, key)
        order = list(self.scheduler.groups)
        await self.inbox.send(_Probed(tuple(sorted(running, key=order.index))))

    def _observed_result(self, item: Observation, now: float) -> None:
        """A monitor's result: record it; a failure of a group running here goes to the
        recovery policy, whose decision is carried out (docs/resources.md#recovery)."""
        result = item.result
        key, name = item.group, result.resource
        self.last_monitor[name] = result
        sched = self.scheduler
        if (
            key not in sched.groups
            or sched.maintenance
            or key in self._restarting
            or sched.mine[key].state is not GroupState.RUNNING
        ):
            return
        group = sched.groups[key]
        self.recovery = self.recovery.expire(now=now, groups=sched.groups.values())
        if result.state is MonitorState.RUNNING:
            self.recovery, recovered = self.recovery.succeeded(name, self.local)
            if recovered:
                log.info("%s is running again on %s", name, self.local)
                self._publish("resource-recovered", self.local, key, f"{name} is running again")
            return
        self.last_failure[name] = result
        what = "is not running" if result.state is MonitorState.NOT_RUNNING else "failed"
        self.recovery, decision = self.recovery.failed(group, name, self.local, now=now, what=what)
        detail = f" ({result.reason})" if result.reason else ""
        log.warning("%s%s", decision.reason, detail)
        self._transition(key, decision.reason + detail)
        self._publish("resource-failed", self.local, key, decision.reason + detail)
        if decision.action is Recovery.RESTART:
            assert self._nursery is not None
            self._restarting.add(key)
            self._nursery.start_soon(self._restart, key, name, decision.reason)
        elif decision.action is Recovery.MOVE:
            self._apply(sched.monitor_failed(key, now, decision.reason))
            self._forget_refusal_later(key)

    def _forget_refusal_later(self, key: str) -> None:
        """With a failure_timeout, a move's refusal is lifted when it expires, as
        Pacemaker's failure-timeout does: the group may then come back here."""
        ends = self.recovery.refusal_ends(self.scheduler.groups[key], self.local)
        if ends is None:
            return
        assert self._nursery is not None
        self._nursery.start_soon(self._tell_at, ends, _RefusalDue(key))

    async def _tell_at(self, deadline: float, item: _Item) -> None:
        await trio.sleep_until(deadline)
        await self.inbox.send(item)

    def _refusal_due(self, key: str, now: float) -> None:
        sched = self.scheduler
        if key not in sched.groups:
            return  # removed by a reload
        group = sched.groups[key]
        had = self.recovery.refusal_ends(group, self.local)
        if had is None:
            return  # cleaned up meanwhile
        self.recovery = self.recovery.expire(now=now, groups=sched.groups.values())
        if self.recovery.refusal_ends(group, self.local) is not None:
            return  # a newer move refuses it still (its own timer lifts that one)
        window = duration_text(group.failure_timeout / 1000) if group.failure_timeout else ""
        text = f"the failures that moved {key} away are older than failure_timeout {window}"
        log.info("%s: it may run here again", text)
        self._transition(key, f"{text}: it may run here again")
        self._apply(sched.readmit(key, now))

    async def _restart(self, key: str, resource: str, reason: str) -> None:
        group = self.scheduler.groups[key]
        async with self._lock(key):
            with self.monitors.paused(key):
                try:
                    result = await restart_in_place(
                        self.agents[key],
                        resource,
                        log=log,
                        node=group.node,
                        stop_retries=self.stop_retries,
                        retry_delay=self.retry_delay,
                    )
                    done = _Restarted(
                        key, resource, result.ok, result.ok or not result.stuck, result.reason
                    )
                except Exception as exc:  # an agent bug: the group's state is unknown
                    log.exception("internal error while restarting %s", resource)
                    done = _Restarted(key, resource, False, False, f"internal error: {exc}")
        await self.inbox.send(done)

    def _restarted(self, item: _Restarted, now: float) -> None:
        self._restarting.discard(item.group)
        sched = self.scheduler
        if item.ok:
            log.info("restarted %s in place on %s", item.resource, self.local)
            self._transition(item.group, f"restarted {item.resource} in place on {self.local}")
            return
        if item.clean:
            why = f"restart of {item.resource} failed ({item.detail})"
            self._apply(sched.monitor_failed(item.group, now, why))
        else:
            self.monitors.unwatch(item.group)
            why = f"restart of {item.resource} could not stop it ({item.detail})"
            self._publish("release-failed", self.local, item.group, why)
            self._apply(sched.restart_failed(item.group, now, why))

    def own_fail_counts(self, now: float) -> dict[str, int]:
        """Resource -> this node's fail count above zero, each in its group's window."""
        counts: dict[str, int] = {}
        for group in self.scheduler.groups.values():
            window = None if group.failure_timeout is None else group.failure_timeout / 1000
            for spec in group.resources:
                n = self.recovery.fail_count(spec.raw, self.local, now=now, failure_timeout=window)
                if n > 0:
                    counts[spec.raw] = n
        return counts

    def resource_report(self, group: ResourceGroup, now: float) -> list[dict[str, Any]]:
        """Per resource of ``group``: state, fail counts (this node's, and the peers' from
        their reports), last monitor and failure (status)."""
        window = None if group.failure_timeout is None else group.failure_timeout / 1000
        peers = self.scheduler.peers
        out: list[dict[str, Any]] = []
        for spec in group.resources:
            counts = {
                n: p.fail_counts[spec.raw] for n, p in peers.items() if spec.raw in p.fail_counts
            }
            counts.update(self.recovery.fail_counts(spec.raw, now=now, failure_timeout=window))
            seen = self.last_monitor.get(spec.raw)
            failure = self.last_failure.get(spec.raw)
            monitored = group.monitor_of(spec) is not None
            state = seen.state.value if seen is not None else ("unknown" if monitored else "-")
            out.append(
                {
                    "name": spec.raw,
                    "monitored": monitored,
                    "state": state,
                    "fail_counts": dict(sorted(counts.items())),
                    "last_monitor": _monitor_json(seen),
                    "last_failure": _monitor_json(failure),
                }
            )
        return out


def _monitor_json(result: MonitorResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "state": result.state.value,
        "when": result.when,
        "code": result.code,
        "reason": result.reason,
        "stderr": result.stderr,
    }


class _Control:
    """The :class:`pulse.plugin.api.GroupControl` a takeover check's ``run`` is given."""

    def __init__(self, manager: ResourceManager) -> None:
        self._manager = manager

    def holding(self) -> frozenset[str]:
        mine = self._manager.scheduler.mine
        return frozenset(k for k, m in mine.items() if m.state in CLAIMED)

    def release(self, group: str, reason: str) -> None:
        self._tell(_GiveUp(group, reason))

    def readmit(self, group: str) -> None:
        self._tell(_GiveUp(group, None))

    def alive_nodes(self) -> frozenset[str]:
        manager = self._manager
        peers = manager.scheduler.peers
        return frozenset({manager.local, *(n for n, p in peers.items() if p.alive)})

    def publish(self, kind: str, *, group: str | None = None, reason: str = "") -> None:
        self._manager._publish(kind, self._manager.local, group, reason)

    def _tell(self, item: _GiveUp) -> None:
        try:
            self._manager.inbox.send_nowait(item)
        except trio.WouldBlock:
            assert self._manager._nursery is not None
            self._manager._nursery.start_soon(self._manager.inbox.send, item)
