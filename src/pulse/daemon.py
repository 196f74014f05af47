"""The running daemon: the ONE place where tasks and channels are wired.

::

    links ──▶ Comms (comms.py): the protocol engine over the links, timers, watchers
                 │ events (membership, comms up, cut off)
                 ├──▶ ResourceManager inbox (failover/manager.py)
                 │       Scheduler (pure policy) ▶ group tasks (agents), takeover checks,
                 │       fencing, Send ▶ Comms.send; ClusterEvents ▶ EventBus ▶ a task per
                 │       plugin listener / notify script (bounded queues)
                 └──▶ RespawnSupervisor (respawn.py): a task per respawn/failfast program
    control.serve_control ◀── pulsectl (control/status.py answers)
    _watch_signals: SIGHUP ▶ reload; SIGTERM/SIGINT ▶ no more respawns, release every
      group, send shutdone, stop the respawned programs (reverse order), stop

:func:`serve` builds every collaborator first, in dependency order (engine, scheduler,
comms, plugins' objects, resource manager, respawn supervisor), then the
:class:`Daemon` that holds them, then starts every task in one nursery
(:func:`_run_tasks`). The engine (:mod:`pulse.protocol.engine`) and the scheduler
(:mod:`pulse.failover.policy`) are pure; everything that blocks or touches the outside
world lives in :mod:`pulse.comms`, :mod:`pulse.transport`, :mod:`pulse.failover.manager`
and :mod:`pulse.resources`. Nothing on the heartbeat path ever waits for a plugin, a
resource script or a slow link.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import random
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from pulse import __version__, logsetup, memtrim, metrics
from pulse.comms import INBOUND_QUEUE, Comms
from pulse.config import Loaded
from pulse.config.model import Config, ResourceGroup, ResourceOptions
from pulse.control import status as control
from pulse.control.protocol import Reply, Request
from pulse.control.server import serve_control
from pulse.errors import ConfigError, PulseError, Severity
from pulse.failover.manager import ResourceManager
from pulse.failover.policy import Scheduler
from pulse.logsetup import LOGGER_NAME
from pulse.notify import notify_listeners
from pulse.plugin.bus import EventBus
from pulse.plugin.host import PluginHost, errors_of
from pulse.protocol.engine import Engine
from pulse.protocol.events import Output
from pulse.protocol.identity import PeerMark, load_peer_marks, load_uuid, next_generation
from pulse.reload import WHY_REFUSED, ReloadPlan, plan_reload
from pulse.resources import AgentTimeouts, ArpPolicy, ResourceAgent, make_agent
from pulse.resources.environment import child_environment
from pulse.resources.ipaddr import IP_AGENTS, FloatingIP, arp_policy_for
from pulse.resources.scripts import OcfAgent, ScriptAgent, SystemdAgent
from pulse.respawn import STOP_GRACE, RespawnSupervisor, Spawn, system_reboot
from pulse.supervision import HardwareWatchdog, SystemdNotifier, Watchers
from pulse.transport import Datagram, Link, open_links
from pulse.wire.auth import Signer
from pulse.wire.message import Message

log = logging.getLogger(LOGGER_NAME)

AgentBuilder = Callable[
    [Sequence[ResourceGroup], ResourceOptions], Mapping[str, Sequence[ResourceAgent]]
]

LOADAVG_REFRESH = 5.0
MEMORY_TRIM_FIRST = 2.0  # seconds after start
MEMORY_TRIM_INTERVAL = 300.0


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


class Daemon:
    """One running pulse node: its collaborators, its status, its reload."""

    def __init__(
        self,
        loaded: Loaded,
        comms: Comms,
        resources: ResourceManager,
        plugins: PluginHost,
        respawn: RespawnSupervisor,
        watchers: Watchers,
        make_agents: AgentBuilder,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.comms = comms
        self.resources = resources
        self.plugins = plugins
        self.respawn = respawn
        self.watchers = watchers
        self.make_agents = make_agents  # for the groups a reload adds
        self.started_at = trio.current_time()
        self.metrics_port: int | None = None  # the metrics endpoint's port, once listening
        self.reloads = 0  # configurations applied by SIGHUP

    @property
    def engine(self) -> Engine:
        return self.comms.engine

    @property
    def cut_off(self) -> bool:
        return self.comms.cut_off

    @property
    def wire_counters(self) -> collections.Counter[str]:
        return self.comms.wire_counters

    def subscribe(self) -> trio.MemoryReceiveChannel[Output]:
        """A bounded stream of every event the engine emits (drops are counted)."""
        return self.comms.subscribe()

    def send(self, message: Message) -> None:
        """Send an application message to every peer, now."""
        self.comms.send(message)

    async def stop(self) -> None:
        """Tell the peers we are leaving (``shutdone``) and give the packets time to go."""
        await self.comms.stop()

    # ------------------------------------------------------------------ pulsectl

    def status(self) -> dict[str, Any]:
        return control.node_status(self)

    def plugin_status(self) -> dict[str, Any]:
        return control.plugin_status(self)

    def status_line(self) -> str:
        return control.status_line(self)

    async def metrics_text(self) -> str:
        return await control.metrics_text(self)

    async def handle_request(self, request: Request) -> Reply:
        return await control.handle_request(self, request)

    # ------------------------------------------------------------------ reload

    async def reload(self, reloader: Callable[[], Loaded] | None) -> bool:
        """SIGHUP: reopen the logs, re-read the configuration and apply what may change
        while running (pulse.reload). A configuration with errors changes nothing."""
        self.watchers.reloading()
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
            self.watchers.ready()

    def _retune(self, rt: ResourceOptions) -> None:
        """A reload changed ``[resources]``: the agents' operation timeouts and the
        floating IPs' announcements apply from their next operation on, also for the
        groups running now (the agents are the same objects: a running ARP series and
        a stop in progress are not disturbed)."""
        timeouts, arp = _agent_timeouts(rt), _arp_overrides(rt)
        for agents in self.resources.agents.values():
            for agent in agents:
                if isinstance(agent, FloatingIP):
                    agent.arp = arp_policy_for(agent.flavor, arp)
                elif isinstance(agent, ScriptAgent | OcfAgent | SystemdAgent):
                    agent.timeouts = timeouts
        self.resources.stop_retries = rt.stop_retries

    def _reconfigure_plugins(self, plan: ReloadPlan, previous: Config) -> set[str]:
        """Offer the changed ``[plugins.NAME]`` tables to the plugins (pulse_reconfigure).

        When ``pulse_configure`` finds an error, or a plugin's ``pulse_reconfigure``
        raises, the daemon and the plugins' context keep *previous*'s plugin tables, so
        that status shows what runs and the next reload offers the change again.
        """
        node = self.loaded.node
        # The context is rebound first: hooks called with a new Config object would
        # otherwise get a fresh context and lose the state the plugins made at start-up.
        self.plugins.rebind(plan.config, node)
        diags = self.plugins.configure(plan.config, node)
        for d in diags:
            level = logging.ERROR if d.severity is Severity.ERROR else logging.WARNING
            log.log(level, "Reload: %s", d)
        if errors_of(diags):
            log.error("Reload: plugin settings unchanged: fix the errors above and reload again.")
            self._keep_plugin_tables(previous)
            return set()
        try:
            answers = self.plugins.reconfigure(plan.config, node)
        except PulseError as exc:
            log.error("Reload: %s; plugin settings unchanged", exc)
            self._keep_plugin_tables(previous)
            return set()
        done = set()
        for name in plan.plugin_tables:
            if answers.get(name):
                done.add(f"plugins.{name}")
            else:
                log.warning(
                    "Reload: [plugins.%s] changed; the plugin cannot apply it while running: %s",
                    name,
                    WHY_REFUSED,
                )
        return done

    def _keep_plugin_tables(self, previous: Config) -> None:
        kept = dataclasses.replace(self.config, plugins=previous.plugins)
        self.config = kept
        self.loaded = dataclasses.replace(self.loaded, config=kept)
        self.plugins.rebind(kept, self.loaded.node)

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
            self.comms.rekey(Signer(plan.config.auth))  # the ping links' echoes too
        previous = self.config
        self.config = plan.config
        self.loaded = dataclasses.replace(self.loaded, config=plan.config)
        if applied & {"timing", "max_rexmit_delay"}:
            self.comms.reconfigure(plan.config)
            self.resources.scheduler.reconfigure(plan.config)
        if "resource_options" in applied:
            self._retune(plan.config.resource_options)
        if plan.retuned_groups:
            await self.resources.retune_groups(plan.retuned_groups)
        if plan.added_groups:
            agents = self.make_agents(plan.added_groups, plan.config.resource_options)
            await self.resources.add_groups(plan.added_groups, agents)
        if plan.plugin_tables:
            applied |= self._reconfigure_plugins(plan, previous)
        self.reloads += 1
        done = ", ".join(sorted(applied)) if applied else "nothing to apply"
        refused = f"; {len(plan.refused)} change(s) need a restart" if plan.refused else ""
        log.info("Configuration reloaded: %s%s.", done, refused)
        return True


def _agent_timeouts(rt: ResourceOptions) -> AgentTimeouts:
    return AgentTimeouts(start=rt.start / 1000, stop=rt.stop / 1000, status=rt.status / 1000)


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


class LoadAverage:
    """The first line of ``/proc/loadavg`` (the ``ld`` field of sequenced messages), read
    again when it is older than *refresh* seconds, when a message asks for it.

    No task and no thread: reading procfs never blocks, and an idle node that woke up
    every 5 s only to read it through ``trio.Path`` (a worker thread) paid a wake-up and
    a thread hand-off for a value read at most once per message (docs/performance.md,
    issue 14).
    """

    def __init__(
        self,
        path: str = "/proc/loadavg",
        refresh: float = LOADAVG_REFRESH,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.path, self.refresh, self.clock = path, refresh, clock
        self.value = "n/a"
        self.read_at: float | None = None

    def __call__(self) -> str:
        now = self.clock()
        if self.read_at is None or now - self.read_at >= self.refresh:
            self.read_at = now
            try:
                with open(self.path, "rb") as f:
                    self.value = f.read(256).decode("ascii", "replace").strip() or "n/a"
            except OSError:
                self.value = "n/a"
        return self.value


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
        daemon.respawn.shutdown_begins()
        await daemon.resources.shutdown()
        log.info("All HA resources relinquished.")
        await daemon.stop()
        await trio.sleep(grace)
        await daemon.respawn.stop()
        daemon.watchers.clean_stop()
        if state_dir is not None:
            await daemon.comms.save_peer_marks(state_dir)
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
    loadavg = options.loadavg or LoadAverage()
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
    scheduler = Scheduler(config=config, local=loaded.node, now=trio.current_time())
    watchers = Watchers(describe=lambda: control.describe(engine, scheduler))
    if options.systemd_notify:
        watchers.notifier = SystemdNotifier.from_environment()
    the_links = list(links) if links is not None else open_links(config)
    comms = Comms(config, engine, the_links, signer, watchers, kernel_timer=options.kernel_timer)
    children = child_environment(config, node=loaded.node, extra=options.script_env)
    host = options.plugins or PluginHost.empty()
    rt = config.resource_options
    registry = host.resource_agents(config, loaded.node)

    def make_agents(
        groups: Sequence[ResourceGroup], rt: ResourceOptions
    ) -> dict[str, list[ResourceAgent]]:
        timeouts, arp = _agent_timeouts(rt), _arp_overrides(rt)
        return {
            group.key: [
                make_agent(
                    spec, config, env=children, registry=registry, timeouts=timeouts, arp=arp
                )
                for spec in group.resources
            ]
            for group in groups
        }

    agents = make_agents(config.groups, rt)
    bus = EventBus([*host.event_listeners(config, loaded.node), *notify_listeners(config.notify)])
    manager = ResourceManager(
        config=config,
        local=loaded.node,
        agents=agents,
        send=comms.send,
        scheduler=scheduler,
        stop_retries=rt.stop_retries if options.stop_retries is None else options.stop_retries,
        retry_delay=options.retry_delay,
        bus=bus,
        checks=host.takeover_checks(config, loaded.node),
        fencing=host.fencing_devices(config, loaded.node),
    )
    respawn = RespawnSupervisor.from_config(
        config,
        children,
        reboot=options.reboot,
        spawn=options.spawn,
        stop_grace=options.respawn_stop_grace,
    )
    comms.add_subscriber(manager.inbox.clone())
    daemon = Daemon(loaded, comms, manager, host, respawn, watchers, make_agents)
    log.info(
        "pulse %s starting: node %s, generation %d, %d link(s)",
        __version__,
        loaded.node,
        generation,
        len(the_links),
    )
    try:
        await _run_tasks(daemon, options, signals, task_status)
    finally:
        watchers.close()


async def _run_tasks(
    daemon: Daemon,
    options: DaemonOptions,
    signals: AsyncIterator[int] | None,
    task_status: trio.TaskStatus[Daemon],
) -> None:
    """Start every task of the daemon in one nursery (the wiring diagram at the top)."""
    config = daemon.config
    comms, manager, respawn = daemon.comms, daemon.resources, daemon.respawn
    inbound_tx, inbound_rx = trio.open_memory_channel[Datagram](INBOUND_QUEUE)
    async with trio.open_nursery() as nursery:
        if options.trim_memory:
            nursery.start_soon(_trim_memory_task)
        async with inbound_tx:
            for link in comms.links:
                await nursery.start(link.run, inbound_tx.clone())
        if manager.bus is not None:
            await nursery.start(manager.bus.run)
        await nursery.start(manager.run)
        if respawn.has_clients:
            await nursery.start(respawn.run, daemon.subscribe())
        await nursery.start(comms.run_engine, inbound_rx)
        nursery.start_soon(comms.run_pumps)
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
            nursery.start_soon(comms.remember_peers, state_dir)
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
            daemon.watchers.watchdog = HardwareWatchdog.open(
                config.watchdog, deadtime_ms=config.timing.deadtime
            )
        task_status.started(daemon)
