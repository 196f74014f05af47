"""The plugin contract: what a pulse plugin may import besides ``pulse.hookimpl``.

* :mod:`pulse.plugin.settings`: :class:`~pulse.plugin.settings.SettingsReader`, the
  typed reader of a plugin's ``[plugins.NAME]`` table with ``FILE:LINE`` diagnostics.

docs/plugins/writing.md shows it in use; the hooks are in docs/plugins/hooks.md.
"""

from __future__ import annotations

from pulse.plugin.settings import SettingsReader as SettingsReader

__all__ = ["SettingsReader"]
