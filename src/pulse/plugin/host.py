"""The plugin host: loading plugins, and the typed façade the core calls them through.

The rest of the core never touches pluggy's untyped ``pm.hook`` relay: :class:`PluginHost`
has one typed method per hook, calls it through pluggy, merges the results, and turns a
misbehaving plugin into a diagnostic instead of a crash. The objects plugins return are
described by the protocols in :mod:`pulse.plugin.api`; their async methods are always
called with a timeout.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pluggy

from pulse.config.model import Config
from pulse.errors import Diagnostic, PulseError, Severity
from pulse.plugin import api as hookspecs
from pulse.plugin.api import (
    AgentFactory,
    EventListener,
    FencingDevice,
    Metric,
    PluginContext,
    TakeoverCheck,
)
from pulse.plugin.settings import did_you_mean

log = logging.getLogger("pulse.plugin.host")

ENTRY_POINT_GROUP = "pulse"
DISABLE_ENV = "PULSE_DISABLE_PLUGINS"
TRACE_ENV = "PULSE_TRACE_HOOKS"


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


class _ImplFailed(PluginError):
    """An implementation raised; carries the name of the plugin it belongs to."""

    def __init__(self, plugin: str, error: Exception) -> None:
        super().__init__(str(error))
        self.plugin = plugin
        self.error = error


class PluginHost:
    """Loads plugins and calls their hooks, typed, with errors turned into diagnostics.

    Hooks are called through pluggy (``pm.hook.<name>(...)``), so implementations run
    in pluggy's order (last registered first, ``tryfirst``/``trylast`` respected),
    ``wrapper``/``hookwrapper`` implementations wrap the others, and
    ``PULSE_TRACE_HOOKS=1`` logs every call (pluggy's call monitoring).

    What pluggy does not know is which plugin a result came from or which plugin
    raised: its call loop (``_multicall``) keeps neither. So the host puts a thin
    wrapper around each implementation's function, once, before a hook is first
    called. The wrapper lets pluggy drive the call unchanged and only (1) records
    ``(plugin, result)``, so merged results stay attributed (two plugins registering
    one agent name is an error naming both), (2) re-raises an exception as one naming
    the plugin, and (3) hands the plugin its own view of the ``context`` argument
    (:meth:`pulse.plugin.api.PluginContext.for_plugin`). Call monitoring alone could
    do none of the three: it sees the call as a whole.
    """

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
            pm.add_hookcall_monitoring(_trace_before, _trace_after)
        self.pm = pm
        self.blocked = sorted(set(blocked))
        self.failures: dict[str, str] = {}
        self._context: PluginContext | None = None
        self._records: list[list[tuple[str, object]]] = []

    @classmethod
    def empty(cls) -> PluginHost:
        """A host with no plugin: every hook answers nothing (a daemon without plugins)."""
        return cls(load_entrypoints=False)

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

    # ------------------------------------------------------------------ the context

    def context(self, config: Config, node: str) -> PluginContext:
        """The context the hooks are given: one per host and loaded configuration.

        ``pulse run`` makes one host per daemon and calls every hook with the same
        ``Config``, so a plugin's ``context.state`` lives as long as the daemon.
        """
        ctx = self._context
        if ctx is None or ctx.config is not config or ctx.node != node:
            ctx = self._context = PluginContext(config, node)
        return ctx

    # ------------------------------------------------------------------ hooks

    def _results(self, hook: str, config: Config, node: str) -> list[tuple[str, Any]]:
        """Call *hook* through pluggy; each non-None result with its plugin's name.

        Raises :class:`PluginError` naming the plugin whose implementation raised.
        """
        caller = getattr(self.pm.hook, hook)
        impls: list[pluggy.HookImpl] = caller.get_hookimpls()
        for impl in impls:
            self._adopt(impl)
        record: list[tuple[str, object]] = []
        self._records.append(record)
        try:
            results = caller(config=config, node=node, context=self.context(config, node))
        except _ImplFailed as failed:
            exc = failed.error
            self.failures[failed.plugin] = f"{hook} raised {type(exc).__name__}: {exc}"
            log.error("plugin %s: %s failed", failed.plugin, hook, exc_info=exc)
            raise PluginError(f"plugin {failed.plugin}: {hook} failed: {exc}") from exc
        except Exception as exc:  # pluggy's own complaints, e.g. a wrapper that did not yield
            log.exception("%s failed", hook)
            raise PluginError(f"{hook} failed: {exc}") from exc
        finally:
            self._records.pop()
        owners = {id(result): name for name, result in record}
        # A result no implementation returned as such was made by a wrapper.
        wrappers = "+".join(i.plugin_name for i in impls if i.wrapper or i.hookwrapper)
        return [(owners.get(id(result), wrappers or "?"), result) for result in results]

    def _adopt(self, impl: pluggy.HookImpl) -> None:
        """Put the naming wrapper (see the class docstring) around *impl*'s function."""
        if getattr(impl.function, "_pulse_adopted", False):
            return
        function = impl.function
        plugin = impl.plugin_name
        at = impl.argnames.index("context") if "context" in impl.argnames else None
        records = self._records

        def own_context(args: tuple[object, ...]) -> tuple[object, ...]:
            if at is None or not isinstance(args[at], PluginContext):
                return args
            ctx = args[at]
            assert isinstance(ctx, PluginContext)
            return (*args[:at], ctx.for_plugin(plugin), *args[at + 1 :])

        def call(*args: object, **kwargs: object) -> object:
            try:
                result = function(*own_context(args), **kwargs)
            except _ImplFailed:
                raise
            except Exception as exc:
                raise _ImplFailed(plugin, exc) from exc
            if result is not None and records:
                records[-1].append((plugin, result))
            return result

        def wrap(*args: object, **kwargs: object) -> Generator[None, object, object]:
            # A wrapper's generator, delegated to: pluggy sends and throws into this
            # one exactly as into the plugin's own.
            try:
                generator = function(*own_context(args), **kwargs)
                return (yield from cast(Generator[None, object, object], generator))
            except _ImplFailed:
                raise  # an implementation inside the wrapper failed: already named
            except Exception as exc:
                raise _ImplFailed(plugin, exc) from exc

        adopted = wrap if impl.wrapper or impl.hookwrapper else call
        adopted._pulse_adopted = True  # type: ignore[attr-defined]
        # HookImpl.function is a plain slot; pluggy calls it with the arguments it
        # read from the original function at registration (impl.argnames).
        object.__setattr__(impl, "function", adopted)

    def configure(self, config: Config, node: str) -> list[Diagnostic]:
        diags: list[Diagnostic] = []
        try:
            results = self._results("pulse_configure", config, node)
        except PluginError as exc:
            return [Diagnostic(config.origin, 0, str(exc))]
        for name, result in results:
            for d in result:
                if not isinstance(d, Diagnostic):
                    diags.append(Diagnostic(config.origin, 0, f"plugin {name}: {d}"))
                else:
                    diags.append(d)
        return diags

    def rebind(self, config: Config, node: str) -> None:
        """The daemon reloaded *config*: hooks get it from now on, and the plugins keep
        their per-daemon ``context.state`` (the objects they made at start-up)."""
        old = self._context
        if old is not None and old.node == node:
            self._context = old.with_config(config)

    def reconfigure(self, config: Config, node: str) -> dict[str, bool]:
        """A reload changed plugin tables: ask each plugin to apply *config*.

        Returns, per plugin that implements ``pulse_reconfigure``, whether it applied the
        new settings; a plugin missing from the result cannot.
        """
        self.rebind(config, node)
        applied: dict[str, bool] = {}
        for name, result in self._results("pulse_reconfigure", config, node):
            applied[name] = result is True
        return applied

    def resource_agents(self, config: Config, node: str) -> dict[str, AgentFactory]:
        agents: dict[str, AgentFactory] = {}
        owners: dict[str, str] = {}
        for name, result in self._results("pulse_register_resource_agents", config, node):
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

    def metrics(self) -> tuple[list[tuple[str, Metric]], list[str]]:
        """The plugins' metric families, each with its plugin's name, and what went
        wrong (``pulse_collect_metrics``). Asked with the context the plugins already
        have (:meth:`context`, :meth:`rebind`), so no hook sees a fresh ``state``."""
        ctx = self._context
        if ctx is None:
            return [], []
        try:
            results = self._results("pulse_collect_metrics", ctx.config, ctx.node)
        except PluginError as exc:
            return [], [str(exc)]
        families: list[tuple[str, Metric]] = []
        problems: list[str] = []
        for name, result in results:
            for metric in result:
                if isinstance(metric, Metric):
                    families.append((name, metric))
                else:
                    problems.append(f"plugin {name}: not a Metric: {metric!r:.80}")
        return families, problems

    def _flatten(self, hook: str, config: Config, node: str) -> list[Any]:
        out: list[Any] = []
        for _, result in self._results(hook, config, node):
            out.extend(result)
        return out


def _trace_before(
    hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, object]
) -> None:
    # In the order pluggy calls them (it walks its list from the end).
    order = [f"{i.plugin_name}{' (wrapper)' if i.wrapper or i.hookwrapper else ''}" for i in impls]
    log.debug("hook %s: calling %s", hook, ", ".join(reversed(order)) or "no implementation")


def _trace_after(
    outcome: pluggy.Result[object],
    hook: str,
    impls: Sequence[pluggy.HookImpl],
    kwargs: Mapping[str, object],
) -> None:
    if outcome.exception is not None:
        log.debug("hook %s: raised %s", hook, outcome.exception)
    else:
        result = outcome.get_result()
        count = len(result) if isinstance(result, list) else int(result is not None)
        log.debug("hook %s: %d result(s)", hook, count)


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
    return host, unknown_plugin_tables(config, host) + host.configure(config, node)


def unknown_plugin_tables(config: Config, host: PluginHost) -> list[Diagnostic]:
    """A ``[plugins.NAME]`` table no plugin reads: an error when NAME looks like a
    misspelt installed plugin (``[plugins.mialto]``), a warning otherwise (the plugin
    is not installed yet, or its table is left over)."""
    known = sorted({p.name for p in host.plugins()} | set(host.blocked))
    out: list[Diagnostic] = []
    for name in config.plugins:
        if name in known:
            continue
        line = config.key_lines.get(("plugins", name), 0)
        hint = did_you_mean(name, known)
        installed = ", ".join(known) or "none"
        if hint:
            text = f"plugins.{name}: no plugin is called {name}{hint}; installed: {installed}"
            out.append(Diagnostic(config.origin, line, text))
        else:
            text = (
                f"plugins.{name}: no plugin called {name} is installed, so this table is "
                f"ignored (installed: {installed})"
            )
            out.append(Diagnostic(config.origin, line, text, Severity.WARNING))
    return out


def plugin_agent_names(config: Config, node: str, *, load_entrypoints: bool = True) -> set[str]:
    """Resource agent names the plugins for *config* provide (for the host-fact checks).

    Best effort: a plugin that fails to load or register is reported by
    :func:`load_plugins` afterwards, so here it simply provides nothing.
    """
    try:
        host = PluginHost.for_config(config, load_entrypoints=load_entrypoints)
        return set(host.resource_agents(config, node))
    except Exception:
        return set()


def _module_version(module: str) -> str | None:
    import importlib.metadata  # only here: `pulse run` without plugins never reads metadata

    top = module.split(".", 1)[0]
    try:
        return importlib.metadata.version(top.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return None


def errors_of(diags: Sequence[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity is Severity.ERROR]
