"""Every hook a pulse plugin can implement, grouped by lifecycle phase.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pulse.config.model import Config
    from pulse.errors import Diagnostic
    from pulse.plugin.api import PluginContext
    from pulse.plugins import AgentFactory, EventListener, FencingDevice, TakeoverCheck

PROJECT = "pulse"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


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
        :class:`pulse.resources.ResourceAgent`). The word ``MailTo::a@b::Subject`` is
        handled by the factory registered as ``"MailTo"``. A name registered by two
        plugins is an error.

    Called from: the daemon's start-up, once. The agents' methods run in the resource
    manager's group tasks, under the group operation's timeouts.
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
        the other nodes.

    Called from: the resource manager, on the failover critical path, right before a
    group's first resource starts; each check is bounded by its own ``timeout``.
    """


@hookspec
def pulse_register_event_listeners(
    config: Config, node: str, context: PluginContext
) -> Iterable[EventListener] | None:
    """Objects told about what happens in the cluster (alerts, audit, metrics).

    :returns: objects with ``name``, ``timeout`` and async ``handle(event)``, where
        ``event`` is a :class:`pulse.plugins.ClusterEvent`.

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
