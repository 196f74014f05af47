"""Resource agents: how pulse starts, stops and checks what haresources lists.

The scheduler decides *when* a group moves; this package does the *how*, with
Heartbeat 3.0.6's semantics (docs/heartbeat.md, haresources to gratuitous ARP):

* :func:`make_agent` turns one haresources word into a :class:`ResourceAgent`;
* :func:`acquire_group` / :func:`release_group` run a group left to right /
  right to left, with ResourceManager's skip-if-running, give-up-on-failure and
  stop-retry rules (but no reboot: a stop that cannot be completed marks the
  group failed, see docs/resources.md);
* :func:`monitor_agent` checks one resource under a timeout and
  :class:`MonitorRunner` repeats the checks of the groups this node holds
  (docs/resources.md#monitoring).
"""

from __future__ import annotations

from pulse.resources.agents import AgentFactory as AgentFactory
from pulse.resources.agents import UnusableAgent as UnusableAgent
from pulse.resources.agents import make_agent as make_agent
from pulse.resources.arp import ArpPolicy as ArpPolicy
from pulse.resources.base import AgentTimeouts as AgentTimeouts
from pulse.resources.base import MonitorResult as MonitorResult
from pulse.resources.base import MonitorState as MonitorState
from pulse.resources.base import ResourceAgent as ResourceAgent
from pulse.resources.base import ResourceError as ResourceError
from pulse.resources.base import TimedOut as TimedOut
from pulse.resources.group import GroupResult as GroupResult
from pulse.resources.group import acquire_group as acquire_group
from pulse.resources.group import release_group as release_group
from pulse.resources.group import restart_in_place as restart_in_place
from pulse.resources.ipaddr import FloatingIP as FloatingIP
from pulse.resources.monitor import MonitorRunner as MonitorRunner
from pulse.resources.monitor import Observation as Observation
from pulse.resources.monitor import Watch as Watch
from pulse.resources.monitor import monitor_agent as monitor_agent
from pulse.resources.monitor import probe_group as probe_group
from pulse.resources.scripts import LsbAgent as LsbAgent
from pulse.resources.scripts import OcfAgent as OcfAgent
from pulse.resources.scripts import ScriptAgent as ScriptAgent
from pulse.resources.scripts import ScriptResult as ScriptResult
from pulse.resources.scripts import SystemdAgent as SystemdAgent
from pulse.resources.scripts import run_script as run_script

__all__ = [
    "AgentFactory",
    "AgentTimeouts",
    "ArpPolicy",
    "FloatingIP",
    "GroupResult",
    "LsbAgent",
    "MonitorResult",
    "MonitorRunner",
    "MonitorState",
    "Observation",
    "OcfAgent",
    "ResourceAgent",
    "ResourceError",
    "ScriptAgent",
    "ScriptResult",
    "SystemdAgent",
    "TimedOut",
    "UnusableAgent",
    "Watch",
    "acquire_group",
    "make_agent",
    "monitor_agent",
    "probe_group",
    "release_group",
    "restart_in_place",
    "run_script",
]
