"""``pulse check`` and ``pulse convert``.

Both load the configuration with :func:`pulse.config.load_config`. Errors are
printed one per line as ``FILE:LINE: message`` on stderr (exit 1); warnings as
``FILE:LINE: warning: message``. ``check`` prints a short summary on stdout,
``convert`` the equivalent pulse TOML.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from pulse.config import Loaded, load_config
from pulse.config.convert import to_toml
from pulse.config.durations import format_ms
from pulse.config.model import (
    BcastMedium,
    Config,
    McastMedium,
    Medium,
    PingGroupMedium,
    PingMedium,
    RespawnDirective,
    SerialMedium,
    UcastMedium,
    heartbeat_client,
)
from pulse.errors import ConfigError
from pulse.plugin.host import errors_of, load_plugins, plugin_agent_names


def _load(ns: argparse.Namespace, err: TextIO) -> Loaded | None:
    try:
        loaded = load_config(ns.config, node=ns.node, provided_agents=plugin_agent_names)
    except ConfigError as e:
        for d in e.diagnostics:
            print(str(d), file=err)
        return None
    except OSError as e:  # e.g. a path component that is not a directory
        print(f"{ns.config}: {e.strerror or e}", file=err)
        return None
    for w in loaded.warnings:
        print(str(w), file=err)
    return loaded


def describe_medium(m: Medium) -> str:
    if isinstance(m, BcastMedium):
        return f"bcast {m.interface} port {m.port}"
    if isinstance(m, UcastMedium):
        return f"ucast {m.interface} -> {m.peer} port {m.port}"
    if isinstance(m, McastMedium):
        loop = ", loop" if m.loop else ""
        return f"mcast {m.interface} group {m.group} port {m.port} ttl {m.ttl}{loop}"
    if isinstance(m, SerialMedium):
        return f"serial {m.device} {m.baud} baud"
    if isinstance(m, PingMedium):
        return f"ping{'6' if m.ipv6 else ''} {m.host}"
    assert isinstance(m, PingGroupMedium)
    return f"ping_group {m.group} ({', '.join(m.hosts)})"


def summary(config: Config, node: str) -> str:
    """The human summary ``pulse check`` prints."""
    t = config.timing
    nodes = ", ".join(f"{n} (this node)" if n == node else n for n in config.nodes)
    keys = config.auth.keys
    out = [
        f"configuration {config.origin}: OK",
        f"cluster:       {config.cluster}",
        f"nodes:         {nodes}",
        "links:         "
        + ("; ".join(describe_medium(m) for m in config.links) or "none (ping only)"),
    ]
    if config.ping_nodes:
        pings = [describe_medium(m) for m in config.media if m not in config.links]
        out.append(f"ping nodes:    {'; '.join(pings)}")
    out.append(
        f"timers:        keepalive {format_ms(t.keepalive)}, deadtime {format_ms(t.deadtime)}, "
        f"warntime {format_ms(t.warntime)}, initdead {format_ms(t.initdead)}, "
        f"deadping {format_ms(t.deadping)}"
    )
    out.append(
        f"auth:          {config.auth.outbound_key.method.value} (index {config.auth.outbound}; "
        f"{len(keys)} key{'s' if len(keys) != 1 else ''} accepted)"
    )
    out.append(f"auto_failback: {config.auto_failback.value}")
    if config.ipfail:
        out.append("ipfail:        built in: groups go to the node reaching more ping nodes")
    if config.groups:
        out.append("groups:")
        for g in config.groups:
            mark = " (this node)" if g.node == node else ""
            res = ", ".join(
                r.raw if r.agent == r.raw or r.raw.startswith(r.agent + "::") else
                f"{r.raw} ({r.agent})"
                for r in g.resources
            )  # fmt: skip
            out.append(f"  {g.key}: preferred node {g.node}{mark}: {res}")
    else:
        out.append("groups:        none (membership only)")
    if config.stonith:
        out.append("stonith:       " + "; ".join(s.type for s in config.stonith))
    if config.respawn:
        out.append("respawn:       " + "; ".join(_respawn_line(r) for r in config.respawn))
    return "\n".join(out)


def _respawn_line(r: RespawnDirective) -> str:
    text = " ".join(r.command)
    if r.is_ipfail:
        return f"{text} (not started: built in)"
    if heartbeat_client(r) is not None:
        return f"{text} (not started: a Heartbeat API client)"
    return text + (" (failfast)" if r.failfast else "")


def run_check(ns: argparse.Namespace) -> int:
    loaded = _load(ns, sys.stderr)
    if loaded is None:
        return 1
    host, diags = load_plugins(loaded.config, loaded.node)
    for d in diags:
        print(d, file=sys.stderr)
    if errors_of(diags):
        return 1
    print(summary(loaded.config, loaded.node))
    if host is not None:
        names = [f"{p.name} {p.version}" if p.version else p.name for p in host.plugins()]
        print("plugins:       " + (", ".join(names) if names else "none"))
    return 0


def run_convert(ns: argparse.Namespace) -> int:
    loaded = _load(ns, sys.stderr)
    if loaded is None:
        return 1
    header = (
        f"pulse configuration converted from {loaded.config.origin} by `pulse convert`.\n"
        "Check it with: pulse check -c THIS_FILE"
    )
    sys.stdout.write(to_toml(loaded.config, header=header))
    return 0
