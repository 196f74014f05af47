"""What ``pulsectl`` asks a running daemon, and what it answers.

The status (``pulsectl status [--json]``, the metrics endpoint), the plugin report
(``pulsectl plugins``) and the commands (``standby``, ``takeover``, ``cleanup``,
``maintenance``). Requests arrive
through :func:`pulse.control.server.serve_control`, already checked
(:mod:`pulse.control.protocol`); this module reads the daemon's parts and never changes
them except through the resource manager's command inbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from pulse import __version__, metrics
from pulse.control.protocol import Reply, Request
from pulse.failover.actions import GroupState
from pulse.failover.ipfail import ConnectivityView
from pulse.failover.manager import ResourceManager
from pulse.failover.policy import Scheduler, SchedulerView
from pulse.protocol.engine import ClusterView, Engine

if TYPE_CHECKING:
    from pulse.daemon import Daemon


def node_status(daemon: Daemon) -> dict[str, Any]:
    """Everything ``pulsectl status --json`` prints (docs/operations.md)."""
    config = daemon.config
    manager = daemon.resources
    return {
        "version": __version__,
        "node": daemon.loaded.node,
        "uptime": round(trio.current_time() - daemon.started_at, 3),
        "config": {
            "origin": config.origin,
            "keepalive_ms": config.timing.keepalive,
            "deadtime_ms": config.timing.deadtime,
            "warntime_ms": config.timing.warntime,
            "deadping_ms": config.timing.deadping,
            "reloads": daemon.reloads,
        },
        "cluster": view_to_json(daemon.engine.view()),
        "resources": resources_to_json(manager.view(), manager, now=trio.current_time()),
        "plugins": plugin_status(daemon),
        "respawn": daemon.respawn.status(),
        "wire": daemon.comms.wire_status(),
        "links": {link.name: _stats_to_json(link.statistics()) for link in daemon.comms.links},
    }


def status_line(daemon: Daemon) -> str:
    """What this node is doing, in a few words (systemd's STATUS=)."""
    return describe(daemon.engine, daemon.resources.scheduler)


def describe(engine: Engine, sched: Scheduler) -> str:
    """``active, holds web``: the engine's status and the groups running here."""
    text = str(engine.status)
    held = [k for k, m in sched.mine.items() if m.state is GroupState.RUNNING]
    text += f", holds {', '.join(held)}" if held else ", holds nothing"
    if sched.cut_off:
        text += ", cut off"
    return text


def plugin_status(daemon: Daemon) -> dict[str, Any]:
    """``pulsectl plugins``: what is loaded, blocked, and what each plugin object did."""
    host = daemon.plugins
    manager = daemon.resources
    loaded = [
        {"name": p.name, "module": p.module, "version": p.version, "distribution": p.distribution}
        for p in host.plugins()
    ]
    return {
        "loaded": loaded,
        "blocked": host.blocked,
        "listeners": manager.bus.statistics() if manager.bus else {},
        "checks_and_fencing": {name: st.as_json() for name, st in manager.plugin_stats.items()},
        "fencing": dict(manager.fence_state),
    }


async def metrics_text(daemon: Daemon) -> str:
    """The Prometheus text of this node (the endpoint and ``pulsectl metrics``)."""
    process = await trio.to_thread.run_sync(metrics.read_process)  # reads /proc
    families, problems = daemon.plugins.metrics()
    return metrics.render(node_status(daemon), process, families, problems)


async def handle_request(daemon: Daemon, request: Request) -> Reply:
    """Answer one control request."""
    if request.command == "ping":
        return Reply(True, "pong")
    if request.command == "status":
        return Reply(True, node_status(daemon))
    if request.command == "plugins":
        return Reply(True, plugin_status(daemon))
    if request.command == "metrics":
        return Reply(True, await metrics_text(daemon))
    if request.command in ("standby", "takeover"):
        what = str(request.args.get("what", "all"))
        refused = await daemon.resources.command(request.command, what)
        if refused is not None:
            return Reply(False, error=f"{request.command} {what} refused: {refused}")
        return Reply(True, f"{request.command} {what} accepted")
    if request.command in ("cleanup", "maintenance"):
        default = "all" if request.command == "cleanup" else ""
        what = str(request.args.get("what", default))
        refused = await daemon.resources.command(request.command, what)
        if refused is not None:
            return Reply(False, error=f"{request.command} {what} refused: {refused}")
        return Reply(True, f"{request.command} {what} accepted (sent to every node)")
    return Reply(False, error=f"unknown command {request.command!r}")


def view_to_json(view: ClusterView) -> dict[str, Any]:
    return {
        "local": view.local,
        "local_status": str(view.local_status),
        "comms_up": view.comms_up,
        "generation": view.generation,
        "nodes": [
            {
                "name": n.name,
                "status": str(n.status),
                "links": {k: str(v) for k, v in n.links.items()},
                "last_heard": n.last_heard,
                "generation": n.generation,
                "deadtime_ms": n.deadtime_ms,
            }
            for n in view.nodes
        ],
        "counters": dict(view.counters),
    }


def resources_to_json(
    view: SchedulerView, manager: ResourceManager | None, *, now: float = 0.0
) -> dict[str, Any]:
    groups = manager.scheduler.groups if manager is not None else {}
    return {
        "maintenance": view.maintenance,
        "stable": view.stable,
        "leaving": view.leaving,
        "cut_off": view.cut_off,
        "statistics": manager.statistics.as_json() if manager is not None else {},
        "standby": list(view.standby),
        "decision": manager.last_decision if manager is not None else view.decision,
        "groups": [
            {
                "key": g.key,
                "preferred": g.preferred,
                "holder": g.holder,
                "state": g.state,
                "since": g.since,
                "owner": g.owner,
                "reason": g.reason,
                "resources": (
                    manager.resource_report(groups[g.key], now)
                    if manager is not None and g.key in groups
                    else []
                ),
                "transitions": (
                    list(manager.transitions.get(g.key, ())) if manager is not None else []
                ),
            }
            for g in view.groups
        ],
        "ipfail": connectivity_to_json(view.connectivity),
    }


def connectivity_to_json(view: ConnectivityView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    return {
        "ping_nodes": list(view.ping_nodes),
        "reachable": list(view.reachable),
        "peers": dict(view.peers),
        "giveup_at": view.giveup_at,
        "giving_up": view.giving_up,
    }


def _stats_to_json(stats: object) -> dict[str, Any]:
    slots = getattr(type(stats), "__dataclass_fields__", None)
    if slots is None:
        return {}
    return {name: getattr(stats, name) for name in slots}
