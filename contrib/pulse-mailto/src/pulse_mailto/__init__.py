"""pulse-mailto: Heartbeat's ``MailTo`` resource and alert mail for pulse.

* ``MailTo::ADDR[,ADDR...][::SUBJECT]`` in haresources (or a TOML group) works as in
  Heartbeat: the group's start mails ``SUBJECT Takeover in progress at DATE on NODE``,
  its stop ``SUBJECT Migrating resource away at DATE from NODE``. The mail is sent in
  the background; a mail failure never fails the group.
* ``[plugins.mailto] to = [...]`` mails those addresses about node deaths, failed
  takeovers and releases, and fencing (``events = [...]`` chooses).
* Mail goes through SMTP (default ``localhost:25``; SMTPS, STARTTLS, login) or the
  local ``sendmail -t``, retried with backoff, bounded in attempts and time.

Everything is configured in ``[plugins.mailto]``; see this distribution's README. A
reload (SIGHUP) applies a changed table at once (``pulse_reconfigure``): recipients,
events, subject, sender, transport and retries; only ``state_dir`` needs a restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pulse import hookimpl
from pulse.config.model import Config, ResourceSpec
from pulse.errors import Diagnostic, Severity
from pulse.plugin import PluginContext, SettingsReader
from pulse.plugin.api import AgentFactory, EventListener
from pulse.resources.agents import UnusableAgent
from pulse_mailto.agent import MailToAgent, PseudoState, script_path, state_file_name
from pulse_mailto.delivery import MailStats, Outbox
from pulse_mailto.listener import MailListener
from pulse_mailto.settings import (
    AGENT,
    DEFAULT_STATE_DIR,
    NAME,
    MailSettings,
    parse_mailto,
    parse_settings,
)
from pulse_mailto.transport import Transport, make_transport

__version__ = "0.1.0"

__all__ = [
    "MailService",
    "__version__",
    "pulse_configure",
    "pulse_reconfigure",
    "pulse_register_event_listeners",
    "pulse_register_resource_agents",
    "read_settings",
]


@dataclass(slots=True, kw_only=True)
class MailService:
    """What the agents and the listener of one daemon share, and what a reload changes."""

    settings: MailSettings
    transport: Transport
    stats: MailStats
    outbox: Outbox
    agents: list[MailToAgent] = field(default_factory=list)
    listeners: list[MailListener] = field(default_factory=list)

    def apply(self, settings: MailSettings, transport: Transport) -> bool:
        """New settings for every object already made; False if one needs a restart."""
        if settings.state_dir != self.settings.state_dir:
            return False  # the agents' state files live there
        self.settings, self.transport = settings, transport
        self.outbox.transport, self.outbox.policy = transport, settings.retry
        for agent in self.agents:
            agent.sender = settings.sender
        for listener in self.listeners:
            listener.reconfigure(settings, transport)
        return True


# --------------------------------------------------------------------------- settings


def read_settings(config: Config) -> tuple[MailSettings, list[Diagnostic]]:
    """``[plugins.mailto]`` of *config* with FILE:LINE diagnostics (never raises)."""
    return parse_settings(
        SettingsReader.of(config, NAME),
        cluster=config.cluster,
        hostname=os.uname().nodename,
        state_dir=os.environ.get("HA_RSCTMP") or DEFAULT_STATE_DIR,
    )


def _mailto_specs(config: Config) -> list[ResourceSpec]:
    return [spec for g in config.groups for spec in g.resources if spec.agent == AGENT]


def _host_checks(settings: MailSettings, config: Config) -> list[Diagnostic]:
    """Facts of this machine: warnings only, ``pulse check`` may run elsewhere."""
    r = SettingsReader.of(config, NAME)
    if settings.transport == "sendmail" and not os.access(settings.sendmail, os.X_OK):
        r.warn(
            "sendmail",
            f"{settings.sendmail} is not an executable here; "
            'install an MTA (apt-get install postfix) or use transport = "smtp"',
        )
    pw = settings.smtp.password_file
    if settings.transport == "smtp" and pw is not None and not os.access(pw, os.R_OK):
        r.warn("password_file", f"cannot read {pw} here")
    ca = settings.smtp.cafile
    if settings.transport == "smtp" and ca is not None and not os.access(ca, os.R_OK):
        r.warn("cafile", f"cannot read {ca} here")
    return r.diagnostics


# --------------------------------------------------------------------------- the shared service


def service_for(context: PluginContext) -> MailService:
    """The daemon's one service, shared by the agent factory and the listener; kept in
    the daemon's plugin context, so two daemons in one process have one each."""

    def make() -> MailService:
        settings, _ = read_settings(context.config)
        transport = make_transport(settings, helo=os.uname().nodename)
        stats = MailStats()
        outbox = Outbox(transport, policy=settings.retry, stats=stats, size=settings.queue_size)
        return MailService(settings=settings, transport=transport, stats=stats, outbox=outbox)

    return context.once("service", make)


# --------------------------------------------------------------------------- hooks


@hookimpl
def pulse_configure(config: Config, node: str) -> list[Diagnostic]:
    settings, diags = read_settings(config)
    for spec in _mailto_specs(config):
        diags.extend(parse_mailto(spec)[1])
    diags.extend(_host_checks(settings, config))
    return diags


@hookimpl
def pulse_register_resource_agents(node: str, context: PluginContext) -> Mapping[str, AgentFactory]:
    def factory(spec: ResourceSpec, config: Config) -> MailToAgent | UnusableAgent:
        target, diags = parse_mailto(spec)
        if target is None:
            problem = "; ".join(d.message for d in diags if d.severity is Severity.ERROR)
            return UnusableAgent(spec, problem)
        service = service_for(context)
        state_dir = Path(service.settings.state_dir)
        agent = MailToAgent(
            spec,
            target=target,
            node=node,
            sender=service.settings.sender,
            outbox=service.outbox,
            state=PseudoState(state_dir / state_file_name(node, spec)),
            script=script_path(config.resource_dir),
        )
        service.agents.append(agent)
        return agent

    return {AGENT: factory}


@hookimpl
def pulse_register_event_listeners(config: Config, context: PluginContext) -> list[EventListener]:
    service = service_for(context)
    if not service.settings.to and not _mailto_specs(config):
        return []
    listener = MailListener(service.settings, service.transport, service.stats, service.outbox)
    service.listeners.append(listener)
    return [listener]


@hookimpl
def pulse_reconfigure(config: Config, context: PluginContext) -> bool:
    """A reload changed ``[plugins.mailto]`` (pulse_configure found no error in it)."""
    service = service_for(context)
    settings, _ = read_settings(config)
    return service.apply(settings, make_transport(settings, helo=os.uname().nodename))
