"""The plugin host: loading plugins, and the typed façade the core calls them through.

The core never touches pluggy's untyped ``pm.hook`` relay: :class:`PluginHost` has one
typed method per hook, merges the results, and turns a misbehaving plugin into a
diagnostic instead of a crash. The objects plugins return are described by the
protocols below; their async methods are always called with a timeout.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pluggy

from pulse import hookspecs
from pulse.config.model import Config, ResourceGroup, ResourceSpec
from pulse.errors import Diagnostic, PulseError, Severity

log = logging.getLogger("pulse.plugins")

ENTRY_POINT_GROUP = "pulse"
DISABLE_ENV = "PULSE_DISABLE_PLUGINS"
TRACE_ENV = "PULSE_TRACE_HOOKS"


# --------------------------------------------------------------------------- what plugins return


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterEvent:
    """Something that happened, as told to event listeners.

    ``kind`` is one of: ``node-dead``, ``node-up``, ``acquired``, ``released``,
    ``acquire-failed``, ``release-failed``, ``fenced``, ``fence-failed``, ``shutdown``.
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


class FencingDevice(Protocol):
    name: str
    timeout: float

    def can_fence(self, node: str) -> bool: ...

    async def fence(self, node: str) -> None: ...


# --------------------------------------------------------------------------- the host


@dataclass(frozen=True, slots=True)
class PluginInfo:
    name: str
    module: str
    version: str | None
    distribution: str | None


class PluginError(PulseError):
    """A plugin broke the contract (raised, returned the wrong thing, clashed)."""


def disabled_from(config: Config | None) -> set[str]:
    names = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    if config is not None:
        names |= set(config.disabled_plugins)
    return names


class PluginHost:
    """Loads plugins and calls their hooks, typed, with errors turned into diagnostics."""

    def __init__(
        self,
        *,
        load_entrypoints: bool = True,
        blocked: Iterable[str] = (),
        plugins: Mapping[str, object] | None = None,
    ) -> None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        for name in blocked:
            pm.set_blocked(name)
        for name, plugin in (plugins or {}).items():
            if not pm.is_blocked(name):
                pm.register(plugin, name=name)
        if load_entrypoints:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        pm.check_pending()
        if os.environ.get(TRACE_ENV):
            pm.trace.root.setwriter(lambda text: log.debug("%s", text.rstrip()))
            pm.enable_tracing()
        self.pm = pm
        self.blocked = sorted(set(blocked))
        self.failures: dict[str, str] = {}

    @classmethod
    def for_config(cls, config: Config | None = None, **kwargs: Any) -> PluginHost:
        blocked = set(kwargs.pop("blocked", ())) | disabled_from(config)
        return cls(blocked=blocked, **kwargs)

    # ------------------------------------------------------------------ listing

    def plugins(self) -> list[PluginInfo]:
        dists = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        out = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist = dists.get(id(plugin))
            module = getattr(plugin, "__name__", type(plugin).__name__)
            out.append(
                PluginInfo(
                    name=name,
                    module=module,
                    version=dist.version if dist is not None else _module_version(module),
                    distribution=dist.project_name if dist is not None else None,
                )
            )
        return out

    # ------------------------------------------------------------------ hooks

    def _results(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of *hook* separately, so one broken plugin is
        reported by name and does not hide the others."""
        caller = getattr(self.pm.hook, hook)
        out: list[tuple[str, Any]] = []
        for impl in caller.get_hookimpls():
            name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            try:
                args = {k: v for k, v in kwargs.items() if k in impl.argnames}
                result = impl.function(**args)
            except Exception as exc:
                self.failures[name] = f"{hook} raised {type(exc).__name__}: {exc}"
                log.exception("plugin %s: %s failed", name, hook)
                raise PluginError(f"plugin {name}: {hook} failed: {exc}") from exc
            if result is not None:
                out.append((name, result))
        return out

    def configure(self, config: Config, node: str) -> list[Diagnostic]:
        diags: list[Diagnostic] = []
        try:
            results = self._results("pulse_configure", config=config, node=node)
        except PluginError as exc:
            return [Diagnostic(config.origin, 0, str(exc))]
        for name, result in results:
            for d in result:
                if not isinstance(d, Diagnostic):
                    diags.append(Diagnostic(config.origin, 0, f"plugin {name}: {d}"))
                else:
                    diags.append(d)
        return diags

    def resource_agents(self, config: Config, node: str) -> dict[str, AgentFactory]:
        agents: dict[str, AgentFactory] = {}
        owners: dict[str, str] = {}
        for name, result in self._results(
            "pulse_register_resource_agents", config=config, node=node
        ):
            for agent, factory in dict(result).items():
                if agent in agents:
                    raise PluginError(
                        f"resource agent {agent!r} is registered by both {owners[agent]} "
                        f"and {name}; disable one of them"
                    )
                agents[agent], owners[agent] = factory, name
        return agents

    def takeover_checks(self, config: Config, node: str) -> list[TakeoverCheck]:
        return self._flatten("pulse_register_takeover_checks", config, node)

    def event_listeners(self, config: Config, node: str) -> list[EventListener]:
        return self._flatten("pulse_register_event_listeners", config, node)

    def fencing_devices(self, config: Config, node: str) -> list[FencingDevice]:
        return self._flatten("pulse_register_fencing_devices", config, node)

    def _flatten(self, hook: str, config: Config, node: str) -> list[Any]:
        out: list[Any] = []
        for _, result in self._results(hook, config=config, node=node):
            out.extend(result)
        return out


def load_plugins(
    config: Config, node: str, **kwargs: Any
) -> tuple[PluginHost | None, list[Diagnostic]]:
    """Load the plugins for *config* and let them validate it (``pulse check`` / ``run``).

    Returns the host (None when loading itself failed) and the plugins' diagnostics;
    a plugin that cannot be imported is an error naming it, never a traceback.
    """
    try:
        host = PluginHost.for_config(config, **kwargs)
    except Exception as exc:  # an entry point that does not import, a bad hookimpl
        return None, [Diagnostic(config.origin, 0, f"cannot load plugins: {exc}")]
    return host, host.configure(config, node)


def plugin_agent_names(config: Config, node: str) -> set[str]:
    """Resource agent names the plugins for *config* provide (for the host-fact checks).

    Best effort: a plugin that fails to load or register is reported by
    :func:`load_plugins` afterwards, so here it simply provides nothing.
    """
    try:
        host = PluginHost.for_config(config)
        return set(host.resource_agents(config, node))
    except Exception:
        return set()


def _module_version(module: str) -> str | None:
    top = module.split(".", 1)[0]
    try:
        return importlib.metadata.version(top.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return None


def errors_of(diags: Sequence[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity is Severity.ERROR]
