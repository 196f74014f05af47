"""The plugin system: the public contract, the host that calls it, and the event bus.

What a plugin may import (the contract, kept stable):

* :mod:`pulse.plugin.api`: the hook specifications, ``hookimpl``, :class:`ClusterEvent`,
  the protocols of what hooks return (resource agent factories, takeover checks, event
  listeners, fencing devices) and :class:`~pulse.plugin.api.PluginContext`, the
  per-daemon context every hook can take as its ``context`` argument;
* :mod:`pulse.plugin.settings`: :class:`~pulse.plugin.settings.SettingsReader`, the
  typed reader of a plugin's ``[plugins.NAME]`` table with ``FILE:LINE`` diagnostics.

The core's side: :mod:`pulse.plugin.host` loads plugins and calls the hooks through
pluggy; :mod:`pulse.plugin.bus` runs what they returned (event listeners, takeover
checks, fencing devices) without letting them hold up the cluster.

docs/plugins/writing.md shows the contract in use; the hooks are in docs/plugins/hooks.md.
"""

from __future__ import annotations

from pulse.plugin.api import (
    AgentFactory,
    ClusterEvent,
    EventListener,
    FencingDevice,
    PluginContext,
    TakeoverCheck,
    hookimpl,
)
from pulse.plugin.settings import SettingsReader

__all__ = [
    "AgentFactory",
    "ClusterEvent",
    "EventListener",
    "FencingDevice",
    "PluginContext",
    "SettingsReader",
    "TakeoverCheck",
    "hookimpl",
]
