"""pulse-stonith: fence a dead peer before taking its resources over.

ha.cf's ``stonith TYPE FILE`` and ``stonith_host HOST|* TYPE PARAMS`` lines work as in
Heartbeat (cluster-glue devices); ``[plugins.stonith]`` in TOML adds fence-agents
devices, several devices tried in order, per-device timeouts and the policy. See the
distribution's README.md.

The hooks only read the configuration and build devices; fencing itself happens in the
devices' async methods, which pulse's resource manager calls under their timeouts.
"""

from __future__ import annotations

from pulse import hookimpl
from pulse.config.model import Config
from pulse.errors import Diagnostic
from pulse_stonith.checks import host_checks
from pulse_stonith.devices import ClusterGlueDevice, FenceAgentDevice, RequireFencing
from pulse_stonith.process import FencingError
from pulse_stonith.settings import GlueDeviceSpec, Settings, read_settings

__all__ = [
    "ClusterGlueDevice",
    "FenceAgentDevice",
    "FencingError",
    "RequireFencing",
    "build_devices",
    "pulse_configure",
    "pulse_register_fencing_devices",
]

__version__ = "0.1.0"


def build_devices(
    settings: Settings, config: Config, node: str
) -> list[ClusterGlueDevice | FenceAgentDevice | RequireFencing]:
    """The device objects for *settings*, in the order they are tried."""
    devices: list[ClusterGlueDevice | FenceAgentDevice] = []
    for spec in settings.devices:
        if isinstance(spec, GlueDeviceSpec):
            devices.append(
                ClusterGlueDevice(spec, local=node, host_list_ttl=settings.host_list_ttl)
            )
        else:
            devices.append(FenceAgentDevice(spec, local=node, nodes=config.nodes))
    out: list[ClusterGlueDevice | FenceAgentDevice | RequireFencing] = list(devices)
    if settings.require_fencing:
        out.append(RequireFencing(devices, local=node))
    return out


@hookimpl
def pulse_configure(config: Config, node: str) -> list[Diagnostic]:
    settings, diags = read_settings(config, node)
    return [*diags, *host_checks(settings)]


@hookimpl
def pulse_register_fencing_devices(
    config: Config, node: str
) -> list[ClusterGlueDevice | FenceAgentDevice | RequireFencing]:
    settings, _ = read_settings(config, node)
    return build_devices(settings, config, node)
