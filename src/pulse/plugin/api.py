"""The plugin contract: every hook a pulse plugin can implement, and the types they use.

This module is what a plugin author reads, with docs/plugins/hooks.md (one heading per
hook). It holds the hook specifications, the objects hooks return (as protocols),
:class:`ClusterEvent` and the per-daemon :class:`PluginContext`. It imports no runtime
module of pulse, only the configuration model, diagnostics and the settings reader
(tests/unit/test_import_layers.py keeps it so).


Hooks are plain synchronous functions. Work that takes time lives on the objects
they return (resource agents, takeover checks, event listeners, fencing devices),
whose methods are ``async`` and are called by the core under a timeout, never on the
heartbeat path. A plugin implements any subset of the hooks, and any subset of a
hook's arguments::

    from pulse import hookimpl

    @hookimpl
    def pulse_register_event_listeners(config, node):
        return [MyListener()]

Every hook is given the same three arguments: ``config`` (the loaded configuration),
``node`` (this node's name) and ``context`` (a :class:`pulse.plugin.api.PluginContext`:
both of those again, plus a ``state`` the plugin keeps per daemon). pluggy passes an
implementation only the arguments it names, so a plugin written before ``context``
existed is called as before.

Hooks are called through pluggy: implementations run last registered first, as pluggy
orders them (``tryfirst``/``trylast`` respected), and ``wrapper=True`` implementations
wrap the others.

Plugins are found through the ``pulse`` entry-point group (``pip install pulse-mailto``)
and can be disabled by name (``[plugins] disable = ["mailto"]`` in TOML or
``PULSE_DISABLE_PLUGINS=mailto``). The full reference, one heading per hook, is
docs/plugins/hooks.md.

A pulse process may run several daemons (the virtual-time tests run two or three in
one process, each with its own :class:`pulse.plugin.host.PluginHost`), so a plugin must
not keep what belongs to one daemon in a module global. Every hook can take a
``context`` argument instead: the daemon's configuration and node, and a ``state``
of this plugin's own that lives as long as the daemon::

    @hookimpl
    def pulse_register_event_listeners(context):
        outbox = context.once("outbox", lambda: Outbox(read_settings(context.config)))
        return [Listener(outbox)]

The host hands each plugin its own view (:meth:`PluginContext.for_plugin`), so two
plugins using the same key do not meet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import pluggy

from pulse.config.model import Config, ResourceGroup, ResourceSpec
from pulse.errors import Diagnostic
from pulse.plugin.settings import SettingsReader

__all__ = [
    "PROJECT",
    "AgentFactory",
    "ClusterEvent",
    "EventListener",
    "FencingDevice",
    "GroupControl",
    "Metric",
    "PluginContext",
    "TakeoverCheck",
    "hookimpl",
    "hookspec",
]

PROJECT = "pulse"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

_T = TypeVar("_T")


# --------------------------------------------------------------------------- what plugins return


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterEvent:
    """Something that happened, as told to event listeners.

    ``kind`` is one of: ``node-dead``, ``node-up``, ``acquired``, ``released``,
    ``acquire-failed``, ``release-failed``, ``fenced``, ``fence-failed``, ``shutdown``,
    ``resource-failed`` (a monitor found a resource of a group held here failed or
    gone; ``reason`` says what the recovery policy does), ``resource-recovered``, or a
    kind a takeover check publishes through :meth:`GroupControl.publish` (pulse-etcd:
    ``etcd-lost``, ``etcd-regained``).
    ``node`` is the node it is about, ``local`` the node reporting it, ``group`` the
    group key when it concerns a group, ``resources`` that group's haresources words.
    """

    kind: str
    node: str
    local: str
    group: str | None = None
    resources: tuple[str, ...] = ()
    reason: str = ""
    when: float = field(default_factory=time.time)


class AgentFactory(Protocol):
    def __call__(self, spec: ResourceSpec, config: Config) -> Any: ...


class EventListener(Protocol):
    name: str
    timeout: float

    async def handle(self, event: ClusterEvent) -> None: ...


class TakeoverCheck(Protocol):
    name: str
    timeout: float

    def applies_to(self, group: ResourceGroup) -> bool: ...

    async def check(self, group: ResourceGroup) -> str | None: ...


class GroupControl(Protocol):
    """What a takeover check's optional background ``run(control)`` may ask of the core.

    A gate that grants a group for a while (a lease in etcd) must be able to take it
    back: :meth:`release` makes this node give a group up now, as a standby does (its
    resources stopped in reverse order), and not take it again until :meth:`readmit`.
    All methods return at once; the resource manager does the work in its own task.
    """

    def holding(self) -> frozenset[str]:
        """The groups this node claims now (starting, running, stopping or failed)."""
        ...

    def release(self, group: str, reason: str) -> None:
        """Give *group* up here, for *reason* (logged, in ``pulsectl status`` and in the
        ``released`` event); this node refuses it (announced to its peers, as a failed
        start is) until :meth:`readmit`."""
        ...

    def readmit(self, group: str) -> None:
        """This node may hold *group* again (after :meth:`release`, or after this
        check refused it): the group goes where the cluster's policy says."""
        ...

    def alive_nodes(self) -> frozenset[str]:
        """The nodes this node sees alive now, itself included."""
        ...

    def publish(self, kind: str, *, group: str | None = None, reason: str = "") -> None:
        """Tell the event listeners: a :class:`ClusterEvent` of *kind* about this node."""
        ...


class FencingDevice(Protocol):
    name: str
    timeout: float

    def can_fence(self, node: str) -> bool: ...

    async def fence(self, node: str) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One metric family a plugin adds to the metrics endpoint (``pulse_collect_metrics``).

    ``name`` starts with ``pulse_<plugin>_`` (the plugin's name, each character other
    than a letter, digit or ``_`` written ``_``); ``kind`` is ``"gauge"`` or
    ``"counter"``, and a counter's name ends in ``_total``; ``help`` is one line;
    ``samples`` are ``(labels, value)`` pairs, label names as Prometheus's
    (``[a-zA-Z_][a-zA-Z0-9_]*``). A family that breaks a rule, or whose name pulse or
    another plugin already uses, is left out, and the output says why in a comment.
    """

    name: str
    kind: str
    help: str
    samples: tuple[tuple[Mapping[str, str], float], ...] = ()


# --------------------------------------------------------------------------- the context


@dataclass(frozen=True, slots=True, eq=False)
class PluginContext:
    """One daemon, as a plugin sees it.

    ``config`` is the loaded configuration, ``node`` this node's name, ``plugin`` the
    name the plugin is registered under (its entry point name, which is also its
    ``[plugins.NAME]`` table). ``state`` is a dict of the plugin's own, kept for as long
    as the daemon runs (for ``pulse check``: until the check ends).
    """

    config: Config
    node: str
    plugin: str = ""
    _states: dict[str, dict[str, object]] = field(default_factory=dict, repr=False)

    @property
    def state(self) -> dict[str, object]:
        """This plugin's own objects for this daemon (empty at first)."""
        return self._states.setdefault(self.plugin, {})

    def once(self, key: str, make: Callable[[], _T]) -> _T:
        """``state[key]``, made by ``make()`` the first time it is asked for.

        The way to share one object (a connection pool, a mail queue) between the
        objects several hooks return, e.g. a resource agent and an event listener.
        """
        state = self.state
        if key not in state:
            state[key] = make()
        return cast(_T, state[key])

    def with_config(self, config: Config) -> PluginContext:
        """The same daemon after a reload: the new configuration, the same ``state``."""
        return PluginContext(config, self.node, self.plugin, self._states)

    def for_plugin(self, plugin: str) -> PluginContext:
        """The same daemon as seen by *plugin*: its own ``state``."""
        return PluginContext(self.config, self.node, plugin, self._states)

    def settings(self) -> SettingsReader:
        """A reader of this plugin's ``[plugins.NAME]`` table (:mod:`pulse.plugin.settings`)."""
        return SettingsReader.of(self.config, self.plugin)


# --------------------------------------------------------------------------- configuration


@hookspec
def pulse_configure(
    config: Config, node: str, context: PluginContext
) -> Iterable[Diagnostic] | None:
    """Read this plugin's settings and report what is wrong with them.

    :param config: the loaded configuration; a plugin's TOML table is
        ``config.plugins["<name>"]``, Heartbeat-era settings are in ``config.groups``
        (haresources words such as ``MailTo::...``) and ``config.stonith``.
    :param node: this node's name.
    :param context: this daemon's :class:`pulse.plugin.api.PluginContext`; read the
        table with ``context.settings()`` (:mod:`pulse.plugin.settings`).
    :returns: diagnostics (``pulse.errors.Diagnostic``, errors and warnings) or None.
        Errors stop ``pulse run`` and make ``pulse check`` exit 1.

    Called from: ``pulse check`` and ``pulse run``, once, before any task starts.
    Must not block for long (no network): it validates, it does not connect.
    """


# --------------------------------------------------------------------------- registration


@hookspec
def pulse_register_resource_agents(
    config: Config, node: str, context: PluginContext
) -> Mapping[str, AgentFactory] | None:
    """Resource agent names this plugin provides, for haresources words.

    :returns: ``{name: factory}``; ``factory(spec, config)`` returns an object with
        ``spec`` and async ``start()``, ``stop()``, ``status() -> bool`` (see
        :class:`pulse.resources.ResourceAgent`), and optionally async
        ``monitor(timeout) -> bool`` (True running, False not running, raising
        ``ResourceError`` for a failure; or a :class:`pulse.resources.MonitorResult`),
        which a configured monitor calls instead of ``status()``. The word
        ``MailTo::a@b::Subject`` is handled by the factory registered as ``"MailTo"``.
        A name registered by two plugins is an error.

    Called from: the daemon's start-up, once. The agents' methods run in the resource
    manager's group tasks, under the group operation's timeouts; ``monitor`` runs in
    the monitor runner's task (pulse.resources.monitor), cancelled at its timeout.
    """


@hookspec
def pulse_register_takeover_checks(
    config: Config, node: str, context: PluginContext
) -> Iterable[TakeoverCheck] | None:
    """Gates asked before this node acquires a group.

    :returns: objects with ``name``, ``timeout`` (seconds), ``applies_to(group) -> bool``
        and async ``check(group) -> str | None``: None lets the acquisition go ahead, a
        string refuses it and is the reason shown in logs and status. A refused (or
        failed, or timed-out) check counts as a failed start: the group is offered to
        the other nodes. A check may also have an async ``run(control)``: the resource
        manager runs it in the background for as long as it runs (as a fencing
        device's ``run()``), with a :class:`pulse.plugin.api.GroupControl` through which
        it can make this node give a group up (``control.release(group, reason)``: a
        lease it can no longer renew), let it hold the group again
        (``control.readmit(group)``) and publish events.

    Called from: the resource manager, on the failover critical path, right before a
    group's first resource starts; each check is bounded by its own ``timeout``.
    """


@hookspec
def pulse_register_event_listeners(
    config: Config, node: str, context: PluginContext
) -> Iterable[EventListener] | None:
    """Objects told about what happens in the cluster (alerts, audit, metrics).

    :returns: objects with ``name``, ``timeout`` and async ``handle(event)``, where
        ``event`` is a :class:`pulse.plugin.api.ClusterEvent`.

    Called from: the daemon's start-up, once. Each listener then runs in its own task
    with its own bounded queue: a slow or failing listener never delays heartbeats or a
    takeover; events it cannot keep up with are dropped and counted. An optional
    ``statistics() -> dict`` adds the listener's own counters to ``pulsectl plugins``.
    """


@hookspec
def pulse_register_fencing_devices(
    config: Config, node: str, context: PluginContext
) -> Iterable[FencingDevice] | None:
    """STONITH devices this node can use to fence (power off or cut off) a peer.

    :returns: objects with ``name``, ``timeout``, ``can_fence(node) -> bool`` and async
        ``fence(node) -> None`` (raise on failure). A device may also have an async
        ``run()``: the resource manager runs it in the background for as long as it
        runs (to keep a host list fresh, so ``can_fence`` never has to block).

    Called from: the daemon's start-up, once. When a peer that may hold resources is
    declared dead, the resource manager fences it with the first device that can, and
    takes its groups over only when fencing succeeded; a failed fence is retried every
    5 s (Heartbeat's behaviour) and reported in ``pulsectl status``.
    """


# --------------------------------------------------------------------------- observation


@hookspec
def pulse_collect_metrics(
    config: Config, node: str, context: PluginContext
) -> Iterable[Metric] | None:
    """Metric families this plugin adds to the metrics endpoint and ``pulsectl metrics``.

    :returns: :class:`pulse.plugin.api.Metric` objects (names ``pulse_<plugin>_...``),
        or None. pulse writes them after its own families, in the Prometheus text
        format (docs/operations.md); a family that breaks :class:`Metric`'s rules is
        left out with a comment saying why, the others are kept.

    Called from: every scrape (``GET /metrics`` on ``[metrics] listen``, ``pulsectl
    metrics``), in the daemon's task, with the daemon's current ``context``. Must not
    block or make objects: it reads the figures the objects this plugin made at
    start-up keep (``context.state``). An implementation that raises costs this scrape
    the plugins' families (logged, and said in a comment of the output), not pulse's own.
    """


# --------------------------------------------------------------------------- reload


@hookspec
def pulse_reconfigure(config: Config, node: str, context: PluginContext) -> bool | None:
    """A reload (SIGHUP) changed this plugin's ``[plugins.NAME]`` table: apply it.

    :param config: the new configuration; ``pulse_configure`` already found no error in
        it (a table with errors changes nothing and is logged as such).
    :param context: the same per-daemon ``state`` as at start-up (the objects this
        plugin made then), with the new ``config``.
    :returns: True when the objects this plugin returned now use the new settings;
        None (or False) when it cannot, and the change then waits for a restart (logged
        with where the table is written). Not implementing the hook means the same.

    Called from: the daemon's reload, in the daemon's task, only when some plugin
    table changed; must not block (it swaps settings, it does not connect).
    """
