"""pulse: a plugin-based, trio-powered re-implementation of Linux-HA Heartbeat."""

from __future__ import annotations

__version__ = "0.1.0"
# The Heartbeat version pulse speaks for; exported to scripts as HA_hbversion.
HEARTBEAT_COMPAT_VERSION = "3.0.6"

from pulse.plugin.api import ClusterEvent as ClusterEvent  # noqa: E402
from pulse.plugin.api import hookimpl as hookimpl  # noqa: E402  (the plugin author's marker)

__all__ = ["HEARTBEAT_COMPAT_VERSION", "ClusterEvent", "__version__", "hookimpl"]
