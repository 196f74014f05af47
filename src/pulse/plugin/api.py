"""The per-daemon context a plugin's hooks are given.

A pulse process may run several daemons (the virtual-time tests run two or three in
one process, each with its own :class:`pulse.plugins.PluginHost`), so a plugin must
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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from pulse.config.model import Config
from pulse.plugin.settings import SettingsReader

__all__ = ["PluginContext"]

_T = TypeVar("_T")


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

    def for_plugin(self, plugin: str) -> PluginContext:
        """The same daemon as seen by *plugin*: its own ``state``."""
        return PluginContext(self.config, self.node, plugin, self._states)

    def settings(self) -> SettingsReader:
        """A reader of this plugin's ``[plugins.NAME]`` table (:mod:`pulse.plugin.settings`)."""
        return SettingsReader.of(self.config, self.plugin)
