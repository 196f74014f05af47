"""The running daemon: the ONE place where tasks and channels are wired.

::

    link.run ──Datagram──▶ inbound ──▶ Daemon.run_engine: decode + verify, Engine.receive
     (a task per link; drops its own     │   Transmit ▶ link.try_send_nowait (UDP with room),
      echoes)                            │              else the link's bounded queue ▶ pump task
    Daemon._run_timers: Engine.tick at   │   Log ▶ logging (a queue thread)
      the engine's next deadline         └─ events ▶ ResourceManager inbox (failover.py)
      (a timerfd under pulse run)
                                                       Scheduler (pure) ▶ group tasks (agents),
                                                       takeover checks, fencing, Send ▶ Engine
                                                       ClusterEvents ▶ EventBus ▶ a task per
                                                       plugin listener (bounded queues)
    CommsUp ▶ RespawnSupervisor (respawn.py): a task per respawn/failfast program,
      restarted when it dies; failfast death ▶ DaemonOptions.reboot
    control.serve_control ◀── pulsectl (status, standby, takeover, plugins)
    _watch_signals: SIGTERM/SIGINT ▶ no more respawns, release every group, send
      shutdone, stop the respawned programs (reverse order), stop

The engine (:mod:`pulse.protocol.engine`) and the scheduler (:mod:`pulse.failover.policy`) are
pure: they get facts and the current trio time, and answer with outputs. Everything
that blocks or touches the outside world lives here, in :mod:`pulse.transport`,
:mod:`pulse.failover.manager` and :mod:`pulse.resources`. Nothing on the heartbeat path ever
waits for a plugin, a resource script or a slow link.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from pulse import __version__, logsetup, memtrim, metrics
from pulse.config import Loaded
from pulse.config.model import ResourceOptions
from pulse.control.protocol import Reply, Request
from pulse.control.server import serve_control
from pulse.errors import ConfigError, PulseError
from pulse.failover.ipfail import ConnectivityView
from pulse.failover.manager import ResourceManager
from pulse.failover.policy import SHUTDONE, GroupState, SchedulerView
from pulse.logsetup import LEVELS, LOGGER_NAME
from pulse.notify import notify_listeners
from pulse.plugin.bus import EventBus
from pulse.plugin.host import PluginHost
from pulse.protocol.engine import ClusterView, Engine
from pulse.protocol.events import (
    CommsUp,
    CutOff,
    Log,
    NodeStatus,
    NodeStatusChanged,
    Output,
    Transmit,
)
from pulse.protocol.identity import (
    PeerMark,
    load_peer_marks,
    load_uuid,
    next_generation,
    save_peer_marks,
)
from pulse.reload import ReloadPlan, plan_reload
from pulse.resources import AgentTimeouts, ArpPolicy, make_agent
from pulse.resources.ipaddr import IP_AGENTS, arp_policy_for
from pulse.respawn import STOP_GRACE, RespawnSupervisor, Spawn, env_directives, system_reboot
from pulse.supervision import HardwareWatchdog, SystemdNotifier
from pulse.timerfd import KernelTimer
from pulse.transport import Datagram, Link, open_links
from pulse.wire.auth import Signer
from pulse.wire.codec import Encoding, decode, encode, screen
from pulse.wire.message import Message

log = logging.getLogger(LOGGER_NAME)

INBOUND_QUEUE = 1024
OUTBOUND_QUEUE = 64
EVENT_QUEUE = 1024
LOADAVG_REFRESH = 5.0
MEMORY_TRIM_FIRST = 2.0  # seconds after start
MEMORY_TRIM_INTERVAL = 300.0
BADPACK_LOG_INTERVAL = 10.0  # seconds between two log lines for the same drop reason


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonOptions:
    state_dir: Path
    control_socket: Path | None = None
    control_group: str | None = None  # members may read status (control.access)
    handle_signals: bool = True
    wallclock: Callable[[], float] = time.time
    rng: random.Random | None = None
    shutdown_grace: float = 0.2  # seconds to let the last messages leave on stop
    # Tests inject these to keep file and /proc reads (worker threads) out of virtual time.
    generation: int | None = None
    uuid: bytes | None = None
    loadavg: Callable[[], str] | None = None
    script_env: Mapping[str, str] | None = None  # extra environment for resource scripts
    plugins: PluginHost | None = None
    stop_retries: int | None = None  # overrides the config's [resources] stop_retries
    retry_delay: float = 1.0
    # Sleep on a kernel timerfd between heartbeats (the real clock only: pulse run);
    # trio's timers otherwise, which follow a MockClock. See pulse.timerfd.
    kernel_timer: bool = False
    # Hand freed C heap back to the kernel after start-up and every 5 minutes (memtrim).
    trim_memory: bool = False
    # failfast's action when its program dies: the real reboot (refused when
    # PULSE_NEVER_REBOOT is set or under pytest); tests inject a fake.
    reboot: Callable[[str], None] = system_reboot
    respawn_stop_grace: float = STOP_GRACE  # SIGTERM to SIGKILL for respawned programs
    spawn: Spawn | None = None  # tests: fake processes for respawned programs
    # systemd's NOTIFY_SOCKET (READY, STATUS, WATCHDOG, STOPPING) and ha.cf's watchdog
    # device; pulse run turns both on, virtual-time tests leave them off.
    systemd_notify: bool = False
    watchdog_device: bool = False
    serve_metrics: bool = True  # the [metrics] endpoint, when the config asks for one
    # SIGHUP: load the configuration again (pulse run: as at start); None: logs only.
    reloader: Callable[[], Loaded] | None = None
    # pulse run: start from the peers' generations and seqs in the state directory and
    # save them when a peer dies and at a clean shutdown (pulse_peers, state.py), in a
    # worker thread; tests in virtual time leave the file system alone.
    remember_peers: bool = False


_WIRE_LOG = {
    "bad-signature": "string2msg_ll: node [{src}] failed authentication",
    "bad-auth-index": "Invalid authentication type in message! ({detail})",
}


@dataclass(slots=True)
class _BadPackLog:
    last: dict[str, float] = field(default_factory=dict)
    suppressed: collections.Counter[str] = field(default_factory=collections.Counter)


class Daemon:
    """Drives one :class:`Engine` over a set of links."""

    def __init__(
        self,
        loaded: Loaded,
        engine: Engine,
        links: Sequence[Link],
        signer: Signer,
        *,
        kernel_timer: bool = False,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.engine = engine
        self.links = list(links)
        self.signer = signer
        self.wire_counters: collections.Counter[str] = collections.Counter()
        self.started_at = trio.current_time()
        # One bounded queue per link (by position: two links may share a name, such as
        # `bcast eth0` and `ucast eth0`).
        self._outbound: list[trio.MemorySendChannel[bytes] | None] = [None] * len(self.links)
        self._subscribers: list[trio.MemorySendChannel[Any]] = []
        self._badpack = _BadPackLog()
        self._encoding = (
            Encoding.NETSTRING if self.config.msgfmt == "netstring" else Encoding.CLASSIC
        )
        self._stopping = trio.Event()
        self._timer_scope: trio.CancelScope | None = None
        self._use_kernel_timer = kernel_timer
        self._kernel_timer: KernelTimer | None = None
        self._pumps: list[tuple[Link, trio.MemoryReceiveChannel[bytes]]] = []
        self.resources: ResourceManager | None = None
        self.plugins: PluginHost | None = None
        self.respawn: RespawnSupervisor | None = None
        # Links that carry heartbeats (not ping nodes' ICMP links): when every one of
        # them fails to send, this node is cut off (events.CutOff).
        media = {m.name for m in self.config.links}
        self._heartbeat_links = [link for link in self.links if link.name in media]
        self.cut_off = False
        self.metrics_port: int | None = None  # the metrics endpoint's port, once listening
        self.reloads = 0  # configurations applied by SIGHUP
        self.notifier: SystemdNotifier | None = None
        self.watchdog: HardwareWatchdog | None = None
        self._fed_for: float | None = None  # the status the watchers were last fed for
        self._marks_wanted = trio.Event()  # set when a peer died: save pulse_peers

    # ------------------------------------------------------------------ events

    def subscribe(self, size: int = EVENT_QUEUE) -> trio.MemoryReceiveChannel[Output]:
        """A bounded stream of every event the engine emits (drops are counted)."""
        tx, rx = trio.open_memory_channel[Output](size)
        self._subscribers.append(tx)
        return rx

    def add_subscriber(self, tx: trio.MemorySendChannel[Any]) -> None:
        """Publish every engine event into an existing channel too (never waits)."""
        self._subscribers.append(tx)

    def send(self, message: Message) -> None:
        """Send an application message (resource protocol) to every peer, now."""
        self.dispatch(self.engine.send(message, trio.current_time()))
        self._poke_timers()

    # ------------------------------------------------------------------ outputs

    def dispatch(self, outputs: Sequence[Output]) -> None:
        """Act on the engine's outputs. Never waits: the heartbeat path is never blocked."""
        cache: dict[Encoding, bytes] = {}
        for out in outputs:
            if isinstance(out, Transmit):
                cache.clear()
                self._transmit(out.message, cache)
            elif isinstance(out, Log):
                log.log(LEVELS.get(out.level, logging.INFO), "%s", out.text)
            else:
                if isinstance(out, CommsUp) and self.notifier is not None:
                    self.notifier.ready(self.status_line())
                if isinstance(out, NodeStatusChanged) and out.new is NodeStatus.DEAD:
                    self._marks_wanted.set()
                self._publish(out)

    def _transmit(self, message: Message, cache: dict[Encoding, bytes]) -> None:
        for link, tx in zip(self.links, self._outbound, strict=True):
            encoding = Encoding.CLASSIC if link.classic_only else self._encoding
            data = cache.get(encoding)
            if data is None:
                try:
                    data = encode(message, self.signer, encoding)
                except ValueError as exc:  # a field the wire cannot carry: drop, say why
                    self.wire_counters["unencodable"] += 1
                    log.error("cannot send %s message: %s", message.type, exc)
                    return
                cache[encoding] = data
            if link.try_send_nowait(data):
                continue  # sent at once (a UDP socket with room): no queue, no task switch
            if tx is None:
                continue
            try:
                tx.send_nowait(data)
            except trio.WouldBlock:
                self.wire_counters["tx-queue-full"] += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.wire_counters["tx-closed"] += 1

    def _publish(self, event: Output) -> None:
        for tx in list(self._subscribers):
            try:
                tx.send_nowait(event)
            except trio.WouldBlock:
                self.wire_counters["event-queue-full"] += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(tx)

    # ------------------------------------------------------------------ inputs

    def handle(self, dgram: Datagram, now: float) -> bool:
        """Decode, verify and pass one packet to the engine; False if it was dropped.

        The signature is checked over the raw bytes first (``codec.screen``): a flood
        of packets with a wrong key costs an HMAC per packet, not a parse.
        """
        try:
            reason = screen(dgram.data, self.signer)
            if reason is not None:
                self.wire_counters[reason] += 1
                self._log_badpack(reason, dgram, "refused before decoding", now)
                return False
            decoded = decode(dgram.data, self.signer)
        except Exception as exc:  # WireError; anything else is a codec bug, never fatal
            reason = getattr(exc, "reason", "decoder-bug")
            self.wire_counters[reason] += 1
            self._log_badpack(reason, dgram, str(getattr(exc, "detail", exc)), now)
            return False
        self.wire_counters["accepted"] += 1
        try:
            outputs = self.engine.receive(decoded.message, dgram.link, now)
        except Exception:  # an engine bug must not take the node down
            self.wire_counters["engine-bug"] += 1
            log.exception("internal error while processing a packet from %s", dgram.peer)
            return True
        self.dispatch(outputs)
        return True

    def _log_badpack(self, reason: str, dgram: Datagram, detail: str, now: float) -> None:
        if self.config.parameters.get("log_badpack", "true").lower() in ("false", "off", "no"):
            return
        last = self._badpack.last.get(reason)
        if last is not None and now - last < BADPACK_LOG_INTERVAL:
            self._badpack.suppressed[reason] += 1
            return
        self._badpack.last[reason] = now
        suppressed = self._badpack.suppressed.pop(reason, 0)
        template = _WIRE_LOG.get(reason, "Dropped {reason} packet from {peer} on {link}: {detail}")
        src = _peek_src(dgram.data)
        text = template.format(
            reason=reason, peer=dgram.peer, link=dgram.link, detail=detail, src=src
        )
        if suppressed:
            text += f" ({suppressed} more since last report)"
        log.warning("%s", text)

    # ------------------------------------------------------------------ tasks

    async def run_engine(
        self,
        inbound: trio.MemoryReceiveChannel[Datagram],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        for i, link in enumerate(self.links):
            tx, rx = trio.open_memory_channel[bytes](OUTBOUND_QUEUE)
            self._outbound[i] = tx
            self._pumps.append((link, rx))
        self.dispatch(self.engine.start(trio.current_time()))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_timers)
            task_status.started()
            async with inbound:
                async for dgram in inbound:
                    accepted = self.handle(dgram, trio.current_time())
                    # Take what else is queued without a checkpoint per packet (a flood
                    # arrives in bursts), and move the timer once for all of it: a
                    # dropped packet changes no deadline.
                    for _ in range(INBOUND_QUEUE):
                        try:
                            dgram = inbound.receive_nowait()
                        except trio.WouldBlock:
                            break
                        accepted = self.handle(dgram, trio.current_time()) or accepted
                    if accepted:
                        self._poke_timers()
                        if self.engine.last_status_sent != self._fed_for:
                            self._feed_watchers(trio.current_time())  # a coalesced status

    def _feed_watchers(self, now: float) -> None:
        """After our status went out: feed the watchdog device, systemd's watchdog and
        its status line, from the heartbeat path itself (a stuck loop feeds nothing)."""
        sent = self.engine.last_status_sent
        if sent is None or sent == self._fed_for:
            return
        self._fed_for = sent
        if self.watchdog is not None:
            self.watchdog.feed()
        if self.notifier is not None:
            self.notifier.heartbeat(now)
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        """What this node is doing, in a few words (systemd's STATUS=)."""
        text = str(self.engine.status)
        if self.resources is not None:
            sched = self.resources.scheduler
            held = [k for k, m in sched.mine.items() if m.state is GroupState.RUNNING]
            text += f", holds {', '.join(held)}" if held else ", holds nothing"
            if sched.cut_off:
                text += ", cut off"
        return text

    def _poke_timers(self) -> None:
        """Move the timer task's wake-up to the engine's next deadline.

        Earlier when a packet created a new timer, later when our status went out with
        a received one (coalescing): a wake-up that would find nothing to do costs an
        idle node as much as one that sends.
        """
        timer = self._kernel_timer
        if timer is not None:
            deadline = self.engine.next_deadline()
            if deadline != timer.armed_for:  # most packets leave the next deadline as it was
                timer.armed_for = deadline
                timer.arm(deadline - trio.current_time())
            return
        scope = self._timer_scope
        if scope is not None:
            scope.deadline = self.engine.next_deadline()

    def _check_cut_off(self, now: float) -> None:
        """Publish CutOff when every heartbeat link has failed every send for a keepalive
        (this node's own interfaces are down), and again when one works."""
        if not self._heartbeat_links:
            return
        since = self.config.timing.keepalive / 1000
        failing: list[str] = []
        for link in self._heartbeat_links:
            stats = link.statistics()
            first = getattr(stats, "failing_since", None)
            if first is None or now - first < since:
                break
            failing.append(f"{link.name}: {getattr(stats, 'last_error', None) or 'failing'}")
        cut = len(failing) == len(self._heartbeat_links)
        if cut == self.cut_off:
            return
        self.cut_off = cut
        detail = "; ".join(failing)
        if cut:
            log.warning("Every link of this node fails to send (%s): it is cut off", detail)
        else:
            log.info("A link of this node sends again: no longer cut off")
        self._publish(CutOff(cut_off=cut, at=now, detail=detail))

    def _tick_if_due(self) -> bool:
        """Run the engine's due timers; False if something is still due after that."""
        now = trio.current_time()
        if self.engine.next_deadline() <= now:
            # Before the tick: a peer declared dead by it must not be taken over by a
            # node whose own cables are out.
            self._check_cut_off(now)
            self.dispatch(self.engine.tick(now))
            self._feed_watchers(now)
            return self.engine.next_deadline() > now  # still due: should not happen
        return True

    async def _run_timers(self) -> None:
        # A task of its own, so that receiving a packet costs no cancel scope: the timer
        # sleeps until the engine's next deadline, which _poke_timers keeps up to date.
        timer = KernelTimer.open() if self._use_kernel_timer else None
        self._kernel_timer = timer
        try:
            while True:
                if not self._tick_if_due():
                    await trio.lowlevel.checkpoint()
                    continue
                await self._sleep_until_next_deadline(timer)
        finally:
            self._kernel_timer = None
            if timer is not None:
                timer.close()

    async def _sleep_until_next_deadline(self, timer: KernelTimer | None) -> None:
        deadline = self.engine.next_deadline()
        if timer is not None:
            timer.armed_for = deadline
            timer.arm(deadline - trio.current_time())
            await timer.wait()
            return
        with trio.CancelScope(deadline=deadline) as scope:
            self._timer_scope = scope
            try:
                await trio.sleep_forever()
            finally:
                self._timer_scope = None

    async def remember_peers(self, state_dir: Path) -> None:
        """Save the peers' marks after a peer died (a task: the save runs in a thread)."""
        while True:
            await self._marks_wanted.wait()
            self._marks_wanted = trio.Event()
            await self.save_peer_marks(state_dir)

    async def save_peer_marks(self, state_dir: Path) -> None:
        marks = self.engine.peer_marks(trio.current_time())
        try:
            await trio.to_thread.run_sync(save_peer_marks, state_dir, marks)
        except OSError as exc:
            log.warning("cannot save the peers' sequence numbers in %s: %s", state_dir, exc)

    async def run_pumps(self) -> None:
        async with trio.open_nursery() as nursery:
            for link, rx in self._pumps:
                nursery.start_soon(_pump, link, rx)

    async def stop(self) -> None:
        """Tell the peers we are leaving (``shutdone``) and give the packets time to go."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self.notifier is not None:
            self.notifier.stopping()
        log.info("Heartbeat shutdown in progress. (%d)", os.getpid())
        now = trio.current_time()
        self.dispatch(self.engine.send(SHUTDONE, now))

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        view = self.engine.view()
        resources = self.resources.view() if self.resources is not None else None
        return {
            "version": __version__,
            "node": self.loaded.node,
            "uptime": round(trio.current_time() - self.started_at, 3),
            "config": {
                "origin": self.config.origin,
                "keepalive_ms": self.config.timing.keepalive,
                "deadtime_ms": self.config.timing.deadtime,
                "warntime_ms": self.config.timing.warntime,
                "deadping_ms": self.config.timing.deadping,
                "reloads": self.reloads,
            },
            "cluster": view_to_json(view),
            "resources": resources_to_json(resources, self.resources) if resources else None,
            "plugins": self.plugin_status(),
            "respawn": self.respawn.status() if self.respawn is not None else [],
            "wire": self.wire_status(),
            "links": {link.name: _stats_to_json(link.statistics()) for link in self.links},
        }

    def wire_status(self) -> dict[str, int]:
        """Packets by what became of them; ``kernel-drops``: those the kernel dropped
        for a full receive buffer before we could read them (a flood)."""
        wire = dict(self.wire_counters)
        dropped = sum(getattr(link.statistics(), "kernel_drops", 0) for link in self.links)
        if dropped:
            wire["kernel-drops"] = dropped
        return wire

    def plugin_status(self) -> dict[str, Any]:
        host = self.plugins
        loaded = [
            {
                "name": p.name,
                "module": p.module,
                "version": p.version,
                "distribution": p.distribution,
            }
            for p in (host.plugins() if host is not None else [])
        ]
        manager = self.resources
        return {
            "loaded": loaded,
            "blocked": host.blocked if host is not None else [],
            "listeners": manager.bus.statistics() if manager and manager.bus else {},
            "checks_and_fencing": {
                name: st.as_json() for name, st in (manager.plugin_stats if manager else {}).items()
            },
            "fencing": dict(manager.fence_state) if manager else {},
        }

    async def reload(self, reloader: Callable[[], Loaded] | None) -> bool:
        """SIGHUP: reopen the logs, re-read the configuration and apply what may change
        while running (pulse.reload). A configuration with errors changes nothing."""
        if self.notifier is not None:
            self.notifier.reloading()
        try:
            await trio.to_thread.run_sync(logsetup.reopen)  # stats and opens files
            if reloader is None:
                log.info("Log files reopened.")
                return False
            try:
                loaded = await trio.to_thread.run_sync(reloader)
            except ConfigError as exc:
                for d in exc.diagnostics:
                    log.error("Reload failed: %s", d)
                log.error("Configuration unchanged: fix the errors above and reload again.")
                return False
            except (OSError, PulseError) as exc:
                log.error("Reload failed: %s. Configuration unchanged.", exc)
                return False
            return await self._apply_reload(plan_reload(self.config, loaded.config))
        finally:
            if self.notifier is not None:
                self.notifier.ready(self.status_line())

    async def _apply_reload(self, plan: ReloadPlan) -> bool:
        for line in plan.refused:
            log.warning("Reload: %s", line)
        applied = set(plan.applied)
        if "logging" in applied:
            try:
                await trio.to_thread.run_sync(logsetup.configure, plan.config.logging)
            except OSError as exc:
                log.error("Reload: cannot open the new log file (%s); logging unchanged", exc)
                applied.discard("logging")
                plan = dataclasses.replace(
                    plan, config=dataclasses.replace(plan.config, logging=self.config.logging)
                )
        if "auth" in applied:
            self.signer = Signer(plan.config.auth)
        self.config = plan.config
        self.loaded = dataclasses.replace(self.loaded, config=plan.config)
        if applied & {"timing", "max_rexmit_delay"}:
            self.dispatch(self.engine.reconfigure(plan.config, trio.current_time()))
            self._poke_timers()
            if self.resources is not None:
                self.resources.scheduler.reconfigure(plan.config)
        self.reloads += 1
        done = ", ".join(sorted(applied)) if applied else "nothing to apply"
        refused = f"; {len(plan.refused)} change(s) need a restart" if plan.refused else ""
        log.info("Configuration reloaded: %s%s.", done, refused)
        return True

    async def metrics_text(self) -> str:
        """The Prometheus text of this node (the endpoint and ``pulsectl metrics``)."""
        process = await trio.to_thread.run_sync(metrics.read_process)  # reads /proc
        return metrics.render(self.status(), process)

    async def handle_request(self, request: Request) -> Reply:
        if request.command == "ping":
            return Reply(True, "pong")
        if request.command == "status":
            return Reply(True, self.status())
        if request.command == "plugins":
            return Reply(True, self.plugin_status())
        if request.command == "metrics":
            return Reply(True, await self.metrics_text())
        if request.command in ("standby", "takeover"):
            if self.resources is None:
                return Reply(False, error="this node manages no resources")
            what = str(request.args.get("what", "all"))
            refused = await self.resources.command(request.command, what)
            if refused is not None:
                return Reply(False, error=f"{request.command} {what} refused: {refused}")
            return Reply(True, f"{request.command} {what} accepted")
        return Reply(False, error=f"unknown command {request.command!r}")


async def _pump(link: Link, rx: trio.MemoryReceiveChannel[bytes]) -> None:
    async with rx:
        async for data in rx:
            await link.send(data)


def _peek_src(data: bytes) -> str:
    """Best-effort ``src`` of an undecodable packet, for the log line only."""
    for marker in (b"\nsrc=", b"(0)src="):
        i = data.find(marker)
        if i >= 0:
            start = i + len(marker)
            end = start
            while end < len(data) and end - start < 100 and data[end] not in b"\n,":
                end += 1
            return data[start:end].decode("ascii", "replace")
    return "?"


def view_to_json(view: ClusterView) -> dict[str, Any]:
    return {
        "local": view.local,
        "local_status": str(view.local_status),
        "comms_up": view.comms_up,
        "generation": view.generation,
        "nodes": [
            {
                "name": n.name,
                "status": str(n.status),
                "links": {k: str(v) for k, v in n.links.items()},
                "last_heard": n.last_heard,
                "generation": n.generation,
                "deadtime_ms": n.deadtime_ms,
            }
            for n in view.nodes
        ],
        "counters": dict(view.counters),
    }


def resources_to_json(view: SchedulerView, manager: ResourceManager | None) -> dict[str, Any]:
    return {
        "stable": view.stable,
        "leaving": view.leaving,
        "cut_off": view.cut_off,
        "statistics": manager.statistics.as_json() if manager is not None else {},
        "standby": list(view.standby),
        "decision": manager.last_decision if manager is not None else view.decision,
        "groups": [
            {
                "key": g.key,
                "preferred": g.preferred,
                "holder": g.holder,
                "state": g.state,
                "since": g.since,
                "owner": g.owner,
                "reason": g.reason,
            }
            for g in view.groups
        ],
        "ipfail": _connectivity_to_json(view.connectivity),
    }


def _connectivity_to_json(view: ConnectivityView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {
        "ping_nodes": list(view.ping_nodes),
        "reachable": list(view.reachable),
        "peers": dict(view.peers),
        "giveup_at": view.giveup_at,
        "giving_up": view.giving_up,
    }


def _stats_to_json(stats: object) -> dict[str, Any]:
    slots = getattr(type(stats), "__dataclass_fields__", None)
    if slots is None:
        return {}
    return {name: getattr(stats, name) for name in slots}


def _arp_overrides(rt: ResourceOptions) -> dict[str, ArpPolicy] | None:
    """[resources] arp_count / arp_interval replace Heartbeat's per-agent defaults."""
    if rt.arp_count is None and rt.arp_interval is None:
        return None
    out = {}
    for flavor in IP_AGENTS:
        default = arp_policy_for(flavor)
        out[flavor] = ArpPolicy(
            count=default.count if rt.arp_count is None else rt.arp_count,
            interval=default.interval if rt.arp_interval is None else rt.arp_interval / 1000,
        )
    return out


async def _trim_memory_task() -> None:
    # Once the daemon is up (its start-up garbage is freed), then now and then: what a
    # takeover or a status dump allocated goes back to the kernel too.
    await trio.sleep(MEMORY_TRIM_FIRST)
    while True:
        memtrim.trim()
        await trio.sleep(MEMORY_TRIM_INTERVAL)


async def _loadavg_task(cache: list[str]) -> None:
    path = trio.Path("/proc/loadavg")
    while True:
        try:
            cache[0] = (await path.read_text()).strip()
        except OSError:
            cache[0] = "n/a"
        await trio.sleep(LOADAVG_REFRESH)


async def _watch_signals(
    daemon: Daemon,
    signals: AsyncIterator[int],
    cancel: trio.CancelScope,
    grace: float,
    reloader: Callable[[], Loaded] | None = None,
    state_dir: Path | None = None,
) -> None:
    async for signum in signals:
        if signum == signal.SIGHUP:
            await daemon.reload(reloader)
            continue
        if daemon.respawn is not None:
            daemon.respawn.shutdown_begins()
        if daemon.resources is not None:
            await daemon.resources.shutdown()
            log.info("All HA resources relinquished.")
        await daemon.stop()
        await trio.sleep(grace)
        if daemon.respawn is not None:
            await daemon.respawn.stop()
        if daemon.watchdog is not None:
            daemon.watchdog.disarm()  # a clean stop: the machine must not reboot
        if state_dir is not None:
            await daemon.save_peer_marks(state_dir)
        log.info("%s Heartbeat shutdown complete.", daemon.loaded.node)
        cancel.cancel()
        return


async def serve(
    loaded: Loaded,
    options: DaemonOptions,
    *,
    links: Sequence[Link] | None = None,
    task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one pulse node until cancelled (or until SIGTERM/SIGINT when handling signals)."""
    if not options.handle_signals:
        await _serve(loaded, options, links, None, task_status)
        return
    # Signals are caught from the first moment, before any link sends: a node its
    # peers already see as active must shut down cleanly, never die of a SIGTERM.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        await _serve(loaded, options, links, signals, task_status)


async def _serve(
    loaded: Loaded,
    options: DaemonOptions,
    links: Sequence[Link] | None,
    signals: AsyncIterator[int] | None,
    task_status: trio.TaskStatus[Daemon],
) -> None:
    config = loaded.config
    signer = Signer(config.auth)
    wall = options.wallclock
    generation = options.generation
    if generation is None:
        generation = await trio.to_thread.run_sync(
            lambda: next_generation(options.state_dir, config.hbgenmethod, now=wall())
        )
    uuid = options.uuid
    if uuid is None:
        uuid = await trio.to_thread.run_sync(load_uuid, options.state_dir)
    marks: Mapping[str, PeerMark] = {}
    if options.remember_peers:
        marks = await trio.to_thread.run_sync(load_peer_marks, options.state_dir)
    loadavg_cache = ["n/a"]
    loadavg = options.loadavg or (lambda: loadavg_cache[0])
    engine = Engine(
        config=config,
        local=loaded.node,
        generation=generation,
        uuid=uuid,
        now=trio.current_time(),
        wallclock=wall,
        loadavg=loadavg,
        rng=options.rng or random.Random(),
        peer_marks=marks,
    )
    the_links = list(links) if links is not None else open_links(config)
    daemon = Daemon(loaded, engine, the_links, signer, kernel_timer=options.kernel_timer)
    env = {
        "HA_CURHOST": loaded.node,
        **env_directives(config),
        **(dict(options.script_env) if options.script_env else {}),
    }
    host = options.plugins
    rt = config.resource_options
    timeouts = AgentTimeouts(start=rt.start / 1000, stop=rt.stop / 1000, status=rt.status / 1000)
    arp = _arp_overrides(rt)
    registry = host.resource_agents(config, loaded.node) if host is not None else {}
    agents = {
        group.key: [
            make_agent(spec, config, env=env, registry=registry, timeouts=timeouts, arp=arp)
            for spec in group.resources
        ]
        for group in config.groups
    }
    listeners = host.event_listeners(config, loaded.node) if host is not None else []
    bus = EventBus([*listeners, *notify_listeners(config.notify)])
    manager = ResourceManager(
        config=config,
        local=loaded.node,
        agents=agents,
        send=daemon.send,
        stop_retries=rt.stop_retries if options.stop_retries is None else options.stop_retries,
        retry_delay=options.retry_delay,
        bus=bus,
        checks=host.takeover_checks(config, loaded.node) if host is not None else (),
        fencing=host.fencing_devices(config, loaded.node) if host is not None else (),
    )
    daemon.resources = manager
    daemon.plugins = host
    respawn = RespawnSupervisor.from_config(
        config,
        env,
        reboot=options.reboot,
        spawn=options.spawn,
        stop_grace=options.respawn_stop_grace,
    )
    daemon.respawn = respawn
    daemon.add_subscriber(manager.inbox.clone())
    log.info(
        "pulse %s starting: node %s, generation %d, %d link(s)",
        __version__,
        loaded.node,
        generation,
        len(the_links),
    )
    if options.systemd_notify:
        daemon.notifier = SystemdNotifier.from_environment()
    inbound_tx, inbound_rx = trio.open_memory_channel[Datagram](INBOUND_QUEUE)
    try:
        await _run_tasks(
            daemon, options, the_links, signals, task_status, inbound_tx, inbound_rx,
            bus=bus, loadavg_cache=loadavg_cache,
        )  # fmt: skip
    finally:
        if daemon.watchdog is not None:
            daemon.watchdog.close()  # not disarmed unless the stop was clean: it stays armed
        if daemon.notifier is not None:
            daemon.notifier.close()


async def _run_tasks(
    daemon: Daemon,
    options: DaemonOptions,
    the_links: Sequence[Link],
    signals: AsyncIterator[int] | None,
    task_status: trio.TaskStatus[Daemon],
    inbound_tx: trio.MemorySendChannel[Datagram],
    inbound_rx: trio.MemoryReceiveChannel[Datagram],
    *,
    bus: EventBus,
    loadavg_cache: list[str],
) -> None:
    """Start every task of the daemon in one nursery (the wiring diagram at the top)."""
    config = daemon.config
    manager, respawn = daemon.resources, daemon.respawn
    assert manager is not None and respawn is not None
    async with trio.open_nursery() as nursery:
        if options.loadavg is None:
            nursery.start_soon(_loadavg_task, loadavg_cache)
        if options.trim_memory:
            nursery.start_soon(_trim_memory_task)
        async with inbound_tx:
            for link in the_links:
                await nursery.start(link.run, inbound_tx.clone())
        await nursery.start(bus.run)
        await nursery.start(manager.run)
        if respawn.has_clients:
            await nursery.start(respawn.run, daemon.subscribe())
        await nursery.start(daemon.run_engine, inbound_rx)
        nursery.start_soon(daemon.run_pumps)
        if options.control_socket is not None:
            await nursery.start(
                functools.partial(
                    serve_control,
                    options.control_socket,
                    daemon.handle_request,
                    group=options.control_group or config.control_group,
                )
            )
        if config.metrics is not None and options.serve_metrics:
            try:
                listeners = await nursery.start(
                    metrics.serve_metrics,
                    config.metrics.host,
                    config.metrics.port,
                    daemon.metrics_text,
                )
            except OSError as exc:
                raise PulseError(f"[metrics] listen {config.metrics}: {exc.strerror}") from None
            daemon.metrics_port = listeners[0].socket.getsockname()[1]
            log.info("metrics on http://%s/metrics", config.metrics)
        state_dir = options.state_dir if options.remember_peers else None
        if state_dir is not None:
            nursery.start_soon(daemon.remember_peers, state_dir)
        if signals is not None:
            nursery.start_soon(
                _watch_signals,
                daemon,
                signals,
                nursery.cancel_scope,
                options.shutdown_grace,
                options.reloader,
                state_dir,
            )
        if options.watchdog_device and config.watchdog is not None:
            # Armed last: a daemon that fails to start must not reboot the machine.
            daemon.watchdog = HardwareWatchdog.open(
                config.watchdog, deadtime_ms=config.timing.deadtime
            )
        task_status.started(daemon)
