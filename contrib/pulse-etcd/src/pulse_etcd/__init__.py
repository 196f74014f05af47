"""pulse-etcd: a group may run only on the node that holds its lease in etcd.

Heartbeats still decide which node *should* hold a group; etcd decides which node
*may*. Configured in ``[plugins.etcd]`` (see the distribution's README.md and
docs/plugins/etcd.md). The hooks only read the configuration and build one
:class:`pulse_etcd.gate.LeaseGate` per daemon, shared by the takeover check and the
event listener it also is (``context.once``); all talking to etcd happens in its async
methods, which the core runs under timeouts and in the background. A reload applies
the settings a live gate can change (``pulse_reconfigure``, :meth:`LeaseGate.apply`);
the metrics endpoint gets the gate's figures (``pulse_collect_metrics``).
"""

from __future__ import annotations

import logging

from pulse import hookimpl
from pulse.config.model import Config
from pulse.errors import Diagnostic
from pulse.plugin.api import Metric, PluginContext
from pulse_etcd.client import EtcdClient, EtcdError, EtcdUnavailable, Security
from pulse_etcd.gate import LeaseGate
from pulse_etcd.settings import Settings, read_settings

__all__ = [
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "LeaseGate",
    "Settings",
    "build_gate",
    "pulse_collect_metrics",
    "pulse_configure",
    "pulse_reconfigure",
    "pulse_register_event_listeners",
    "pulse_register_takeover_checks",
]

log = logging.getLogger("pulse.etcd")

__version__ = "0.1.0"


def build_gate(settings: Settings, context: PluginContext, **client: object) -> LeaseGate:
    """The gate for *settings*; *client* goes to :class:`EtcdClient` (a test's transport)."""
    password = settings.password
    if settings.password_file is not None:
        with open(settings.password_file, encoding="utf-8") as f:  # start-up, once
            password = f.read().strip()
    security = Security(
        ca_file=settings.ca_file,
        cert_file=settings.cert_file,
        key_file=settings.key_file,
        username=settings.username,
        password=password,
    )
    etcd = EtcdClient(
        settings.endpoints,
        request_timeout=settings.request_timeout,
        security=security,
        **client,  # type: ignore[arg-type]
    )
    config = context.config
    return LeaseGate(settings, etcd, node=context.node, groups=config.groups, nodes=config.nodes)


def _gate(context: PluginContext) -> LeaseGate | None:
    def make() -> LeaseGate | None:
        settings, _ = read_settings(context.config, context.settings())
        return build_gate(settings, context) if settings.endpoints else None

    return context.once("gate", make)


@hookimpl
def pulse_configure(context: PluginContext) -> list[Diagnostic]:
    _, diags = read_settings(context.config, context.settings())
    return diags


@hookimpl
def pulse_register_takeover_checks(context: PluginContext) -> list[LeaseGate]:
    gate = _gate(context)
    return [gate] if gate is not None else []


@hookimpl
def pulse_register_event_listeners(context: PluginContext) -> list[LeaseGate]:
    gate = _gate(context)
    return [gate] if gate is not None else []


@hookimpl
def pulse_collect_metrics(context: PluginContext) -> list[Metric]:
    gate = context.state.get("gate")  # made at start-up, or not at all
    return gate.metrics() if isinstance(gate, LeaseGate) else []


@hookimpl
def pulse_reconfigure(config: Config, context: PluginContext) -> bool:
    """A reload changed ``[plugins.etcd]``: the gate takes the new settings, or none of
    them when one cannot change under a live lease (logged: restart pulse)."""
    settings, _ = read_settings(config, context.settings())  # pulse_configure: no error
    reader = context.settings()  # for the refusals, with their FILE:LINE
    gate = context.state.get("gate")
    if not isinstance(gate, LeaseGate):
        if not settings.endpoints:
            return True  # still no gate: nothing to apply
        reader.error(
            "endpoints", "etcd arbitration cannot start in a running daemon; restart pulse"
        )
    elif not settings.endpoints:
        reader.error(None, "etcd arbitration cannot stop in a running daemon; restart pulse")
    else:
        for key, why in gate.apply(settings):
            reader.error(key, f"{why}; restart pulse to apply it")
    for diag in reader.diagnostics:
        log.warning("Reload: %s (nothing of [plugins.etcd] applied)", diag)
    return not reader.diagnostics
