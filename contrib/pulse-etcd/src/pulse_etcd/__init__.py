"""pulse-etcd: a group may run only on the node that holds its lease in etcd.

Heartbeats still decide which node *should* hold a group; etcd decides which node
*may*. Configured in ``[plugins.etcd]`` (see the distribution's README.md and
docs/plugins/etcd.md). The hooks only read the configuration and build one
:class:`pulse_etcd.gate.LeaseGate` per daemon, shared by the takeover check and the
event listener it also is (``context.once``); all talking to etcd happens in its async
methods, which the core runs under timeouts and in the background.
"""

from __future__ import annotations

from pulse import hookimpl
from pulse.errors import Diagnostic
from pulse.plugin.api import PluginContext
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
    "pulse_configure",
    "pulse_register_event_listeners",
    "pulse_register_takeover_checks",
]

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
