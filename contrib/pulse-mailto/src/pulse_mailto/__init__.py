"""pulse-mailto: Heartbeat's ``MailTo`` resource and alert mail for pulse.

* ``MailTo::ADDR[,ADDR...][::SUBJECT]`` in haresources (or a TOML group) works as in
  Heartbeat: the group's start mails ``SUBJECT Takeover in progress at DATE on NODE``,
  its stop ``SUBJECT Migrating resource away at DATE from NODE``. The mail is sent in
  the background; a mail failure never fails the group.
* ``[plugins.mailto] to = [...]`` mails those addresses about node deaths, failed
  takeovers and releases, and fencing (``events = [...]`` chooses).
* Mail goes through SMTP (default ``localhost:25``; SMTPS, STARTTLS, login) or the
  local ``sendmail -t``, retried with backoff, bounded in attempts and time.

Everything is configured in ``[plugins.mailto]``; see this distribution's README.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pulse import hookimpl
from pulse.config.model import Config, ResourceSpec
from pulse.errors import Diagnostic, Severity
from pulse.plugins import AgentFactory, EventListener
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
    "pulse_register_event_listeners",
    "pulse_register_resource_agents",
    "read_settings",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MailService:
    """What the agents and the listener of one daemon share."""

    settings: MailSettings
    transport: Transport
    stats: MailStats
    outbox: Outbox


# --------------------------------------------------------------------------- settings


def _toml_lines(config: Config) -> dict[tuple[str | int, ...], int]:
    """Key lines of the TOML file the config came from (empty for Heartbeat files)."""
    if not config.origin.endswith(".toml"):
        return {}
    from pulse.config.toml import key_lines

    try:
        text = Path(config.origin).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return key_lines(text)


def read_settings(config: Config) -> tuple[MailSettings, list[Diagnostic]]:
    """``[plugins.mailto]`` of *config* with FILE:LINE diagnostics (never raises)."""
    table = config.plugins.get(NAME, {})
    lines = _toml_lines(config) if table else {}

    def line_of(key: str | None) -> int:
        base: tuple[str | int, ...] = ("plugins", NAME)
        if key is not None and (*base, key) in lines:
            return lines[(*base, key)]
        return lines.get(base, 0)

    return parse_settings(
        table,
        file=config.origin or "pulse.toml",
        line_of=line_of,
        cluster=config.cluster,
        hostname=os.uname().nodename,
        state_dir=os.environ.get("HA_RSCTMP") or DEFAULT_STATE_DIR,
    )


def _mailto_specs(config: Config) -> list[ResourceSpec]:
    return [spec for g in config.groups for spec in g.resources if spec.agent == AGENT]


def _host_checks(settings: MailSettings, config: Config, line_of_table: int) -> list[Diagnostic]:
    """Facts of this machine: warnings only, ``pulse check`` may run elsewhere."""
    out: list[Diagnostic] = []

    def warn(message: str) -> None:
        out.append(Diagnostic(config.origin, line_of_table, message, Severity.WARNING))

    if settings.transport == "sendmail" and not os.access(settings.sendmail, os.X_OK):
        warn(
            f"plugins.mailto.sendmail: {settings.sendmail} is not an executable here; "
            'install an MTA (apt-get install postfix) or use transport = "smtp"'
        )
    pw = settings.smtp.password_file
    if settings.transport == "smtp" and pw is not None and not os.access(pw, os.R_OK):
        warn(f"plugins.mailto.password_file: cannot read {pw} here")
    ca = settings.smtp.cafile
    if settings.transport == "smtp" and ca is not None and not os.access(ca, os.R_OK):
        warn(f"plugins.mailto.cafile: cannot read {ca} here")
    return out


# --------------------------------------------------------------------------- the shared service

_services: dict[int, tuple[Config, MailService]] = {}


def service_for(config: Config) -> MailService:
    """One service per loaded config, shared by the agent factory and the listener."""
    cached = _services.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    settings, _ = read_settings(config)
    transport = make_transport(settings, helo=os.uname().nodename)
    stats = MailStats()
    outbox = Outbox(transport, policy=settings.retry, stats=stats, size=settings.queue_size)
    service = MailService(settings=settings, transport=transport, stats=stats, outbox=outbox)
    if len(_services) >= 8:  # a daemon loads one config; tests load many
        _services.pop(next(iter(_services)))
    _services[id(config)] = (config, service)
    return service


# --------------------------------------------------------------------------- hooks


@hookimpl
def pulse_configure(config: Config, node: str) -> list[Diagnostic]:
    settings, diags = read_settings(config)
    for spec in _mailto_specs(config):
        diags.extend(parse_mailto(spec)[1])
    lines = _toml_lines(config) if config.plugins.get(NAME) else {}
    diags.extend(_host_checks(settings, config, lines.get(("plugins", NAME), 0)))
    return diags


@hookimpl
def pulse_register_resource_agents(config: Config, node: str) -> Mapping[str, AgentFactory]:
    def factory(spec: ResourceSpec, config: Config) -> MailToAgent | UnusableAgent:
        target, diags = parse_mailto(spec)
        if target is None:
            problem = "; ".join(d.message for d in diags if d.severity is Severity.ERROR)
            return UnusableAgent(spec, problem)
        service = service_for(config)
        state_dir = Path(service.settings.state_dir)
        return MailToAgent(
            spec,
            target=target,
            node=node,
            sender=service.settings.sender,
            outbox=service.outbox,
            state=PseudoState(state_dir / state_file_name(node, spec)),
            script=script_path(config.resource_dir),
        )

    return {AGENT: factory}


@hookimpl
def pulse_register_event_listeners(config: Config, node: str) -> list[EventListener]:
    service = service_for(config)
    if not service.settings.to and not _mailto_specs(config):
        return []
    return [MailListener(service.settings, service.transport, service.stats, service.outbox)]
