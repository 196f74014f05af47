"""Moved to :mod:`pulse.lab.netns` (the demo and the benchmarks use it too)."""

from __future__ import annotations

from pulse.lab.netns import *  # noqa: F403
from pulse.lab.netns import Iface, Lan, Node, Topology, netns_available

__all__ = ["Iface", "Lan", "Node", "Topology", "netns_available"]
