"""pulse-asterisk: bind Asterisk to the floating IP while this node holds the group.

The haresources word ``AsteriskBindaddr::VIP[::CONFDIR]`` (placed after the floating IP
in the group) rewrites ``bindaddr`` in ``[general]`` of sip.conf, iax.conf, h323.conf
and manager.conf, and ``bind`` in pjsip.conf's ``type=transport`` sections (the port is
kept), reloads Asterisk, and restores the original files on release. Settings are in
the TOML table ``[plugins.asterisk]``; see README.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from pulse import hookimpl
from pulse.config.model import Config, ResourceSpec
from pulse.errors import Diagnostic
from pulse.plugin.api import AgentFactory
from pulse.resources import UnusableAgent
from pulse_asterisk.agent import AsteriskBindaddr
from pulse_asterisk.settings import AGENT, AsteriskSettings, Binding, resolve, validate

__all__ = ["AGENT", "AsteriskBindaddr", "AsteriskSettings", "Binding", "make_agent"]
__version__ = "0.1.0"


def make_agent(spec: ResourceSpec, config: Config) -> AsteriskBindaddr | UnusableAgent:
    """The agent for one ``AsteriskBindaddr::...`` word; never raises (a word that
    cannot work gives an agent whose start fails with the reason)."""
    binding, problems = resolve(spec, config)
    if binding is None:
        return UnusableAgent(spec, "; ".join(problems))
    return AsteriskBindaddr(spec, vip=binding.vip, settings=binding.settings)


@hookimpl
def pulse_configure(config: Config) -> list[Diagnostic]:
    return validate(config)


@hookimpl
def pulse_register_resource_agents() -> Mapping[str, AgentFactory]:
    return {AGENT: make_agent}
