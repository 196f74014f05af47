"""From a haresources word to an agent, resolved as Heartbeat's ResourceManager does.

Order (first match wins):

1. a name in the caller's ``registry`` (agents contributed by plugins);
2. ``IPaddr``, ``IPaddr2``, ``IPv6addr`` or a bare address -> :class:`FloatingIP`;
3. ``ocf:PROVIDER:TYPE[::k=v...]`` -> :class:`OcfAgent`;
4. ``systemd:UNIT`` -> :class:`SystemdAgent`; ``lsb:NAME`` -> :class:`LsbAgent`;
5. any other ``NAME`` -> :class:`ScriptAgent`: ``resource.d/NAME`` (Heartbeat
   style), then ``/etc/init.d/NAME`` (LSB), looked up when an operation runs.

``make_agent`` never raises: a word whose arguments cannot work (a malformed
address, an OCF parameter without ``=``) becomes an :class:`UnusableAgent`
whose ``start`` fails with the reason, so one bad line cannot stop the daemon.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from pulse.config.model import Config, ResourceSpec
from pulse.resources.arp import ArpPolicy
from pulse.resources.base import (
    AgentTimeouts,
    MonitorResult,
    MonitorState,
    ResourceAgent,
    ResourceError,
    monitor_result,
)
from pulse.resources.environment import ChildEnvironment, child_environment
from pulse.resources.ipaddr import (
    IP_AGENTS,
    FloatingIP,
    arp_policy_for,
    ip_argument_text,
    is_bare_ip,
    parse_ip_argument,
)
from pulse.resources.scripts import (
    DEFAULT_INIT_DIR,
    LsbAgent,
    OcfAgent,
    ScriptAgent,
    SystemdAgent,
    parse_ocf_name,
    parse_ocf_params,
)

log = logging.getLogger("pulse.resources")

AgentFactory = Callable[[ResourceSpec, Config], ResourceAgent]


class UnusableAgent:
    """A resource whose definition cannot work; ``problem`` says why.

    ``start`` raises :class:`ResourceError` with the problem. It can never have
    been started, so ``status`` is False and ``stop`` succeeds (with a warning),
    which lets the rest of its group be released normally.
    """

    def __init__(self, spec: ResourceSpec, problem: str) -> None:
        self.spec = spec
        self.problem = problem

    def __repr__(self) -> str:
        return f"UnusableAgent({self.spec.raw!r}, {self.problem!r})"

    async def start(self) -> None:
        log.error("%s: %s", self.spec.raw, self.problem)
        raise ResourceError(self.spec.raw, self.problem)

    async def stop(self) -> None:
        log.warning("%s: %s (nothing to stop)", self.spec.raw, self.problem)

    async def status(self) -> bool:
        return False

    async def monitor(self, timeout: float) -> MonitorResult:
        """Never started, so never running; the problem is the reason."""
        return monitor_result(self.spec.raw, MonitorState.NOT_RUNNING, reason=self.problem)


def make_agent(
    spec: ResourceSpec,
    config: Config,
    *,
    timeouts: AgentTimeouts = AgentTimeouts(),  # noqa: B008 - frozen, shared safely
    env: ChildEnvironment | Mapping[str, str] | None = None,
    registry: Mapping[str, AgentFactory] | None = None,
    init_dir: str = DEFAULT_INIT_DIR,
    arp: Mapping[str, ArpPolicy] | None = None,
) -> ResourceAgent:
    """The agent for one haresources word (see the module docstring for the order).

    ``env`` is the children's environment (:func:`child_environment`, built once by
    the daemon); a plain mapping is merged last into it (``HA_CURHOST``, ``OCF_ROOT``
    to move the OCF agent tree, as tests do). ``arp`` overrides the announcement
    policy per IP agent name (``{"IPaddr2": ArpPolicy(count=3, interval=1.0)}``).
    """
    if registry is not None and spec.agent in registry:
        return registry[spec.agent](spec, config)

    children = env if isinstance(env, ChildEnvironment) else child_environment(config, extra=env)
    resource_dir = children.resource_dir
    if spec.agent in IP_AGENTS or is_bare_ip(spec.raw):
        return _floating_ip(spec, resource_dir=resource_dir, arp=arp)

    ocf_root = children.ocf_root
    script_env = dict(children.variables)

    if spec.agent.startswith("ocf:"):
        names = parse_ocf_name(spec.agent)
        if names is None:
            return UnusableAgent(spec, f"{spec.agent!r} is not ocf:PROVIDER:TYPE")
        try:
            params = parse_ocf_params(spec.args)
        except ValueError as exc:
            return UnusableAgent(spec, str(exc))
        provider, rtype = names
        return OcfAgent(
            spec,
            provider=provider,
            rtype=rtype,
            params=params,
            ocf_root=ocf_root,
            env=script_env,
            timeouts=timeouts,
        )
    if spec.agent.startswith("systemd:"):
        unit = spec.agent.removeprefix("systemd:")
        if not unit or "/" in unit or spec.args:
            return UnusableAgent(spec, f"{spec.raw!r} is not systemd:UNIT")
        return SystemdAgent(spec, unit=unit, env=script_env, timeouts=timeouts)
    if spec.agent.startswith("lsb:"):
        return LsbAgent(
            spec,
            resource_dir=resource_dir,
            init_dir=init_dir,
            env=script_env,
            timeouts=timeouts,
        )
    return ScriptAgent(
        spec,
        resource_dir=resource_dir,
        init_dir=init_dir,
        env=script_env,
        timeouts=timeouts,
    )


def _floating_ip(
    spec: ResourceSpec, *, resource_dir: str, arp: Mapping[str, ArpPolicy] | None
) -> ResourceAgent:
    text = ip_argument_text(spec)
    try:
        argument = parse_ip_argument(text)
    except ValueError as exc:
        return UnusableAgent(spec, f"bad IP address argument {text!r}: {exc}")
    if spec.agent in IP_AGENTS:
        flavor = spec.agent
    else:
        flavor = "IPaddr" if argument.version == 4 else "IPv6addr"
    if flavor == "IPv6addr" and argument.version != 6:
        return UnusableAgent(spec, f"IPv6addr needs an IPv6 address, not {argument.address}")
    return FloatingIP(
        spec,
        argument=argument,
        flavor=flavor,
        arp=arp_policy_for(flavor, arp),
        log_path=os.path.join(resource_dir, flavor),
    )
