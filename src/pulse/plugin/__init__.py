"""The plugin contract: what a pulse plugin may import besides ``pulse.hookimpl``.

* :mod:`pulse.plugin.settings`: :class:`~pulse.plugin.settings.SettingsReader`, the
  typed reader of a plugin's ``[plugins.NAME]`` table with ``FILE:LINE`` diagnostics;
* :mod:`pulse.plugin.api`: :class:`~pulse.plugin.api.PluginContext`, the per-daemon
  context every hook can take as its ``context`` argument.

docs/plugins/writing.md shows both in use; the hooks are in docs/plugins/hooks.md.
"""

from __future__ import annotations

from pulse.plugin.api import PluginContext as PluginContext
from pulse.plugin.settings import SettingsReader as SettingsReader

__all__ = ["PluginContext", "SettingsReader"]
