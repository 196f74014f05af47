"""pulse: a plugin-based, trio-powered re-implementation of Linux-HA Heartbeat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
# The Heartbeat version pulse speaks for; exported to scripts as HA_hbversion.
HEARTBEAT_COMPAT_VERSION = "3.0.6"

if TYPE_CHECKING:
    from pulse.plugin.api import ClusterEvent as ClusterEvent
    from pulse.plugin.api import hookimpl as hookimpl  # the plugin author's marker

__all__ = ["HEARTBEAT_COMPAT_VERSION", "ClusterEvent", "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    # The plugin API (pluggy, the config model) is imported when a plugin asks for it,
    # not by every `import pulse`: pulsectl needs only __version__ (docs/performance.md).
    if name in ("ClusterEvent", "hookimpl"):
        from pulse.plugin import api

        return getattr(api, name)
    raise AttributeError(f"module 'pulse' has no attribute {name!r}")
