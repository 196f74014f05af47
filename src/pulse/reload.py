"""What a SIGHUP may change in a running daemon, decided without I/O.

``pulse run`` re-reads and validates the configuration on SIGHUP (as ``pulse check``
would, host facts included). A configuration with errors changes nothing: each error
is logged with its ``FILE:LINE``. Otherwise :func:`plan_reload` compares the running
configuration with the new one and sorts every difference:

* **applied at once**: the timers (``keepalive``, ``deadtime``, ``warntime``,
  ``deadping``: the new deadtime is advertised in the next heartbeat), the
  ``authkeys`` (as Heartbeat does on SIGHUP: add the new key on every node and reload,
  then switch ``auth N`` and reload again; every key in the file is accepted, the
  ``auth`` one signs), ``max_rexmit_delay``, the logging settings, ``[resources]``
  (operation timeouts, stop retries, ARP announcements: from each agent's next
  operation on), and **resource groups added** at the end of haresources (or of the
  ``[[groups]]``), whose preferred node is in the running node list: the node asks the
  others what they hold, then runs the new groups by the usual rules
  (pulse.failover.policy, ``Scheduler.add_groups``); and the **monitoring settings**
  of the groups (``monitor``, ``on_fail``, ``migration_threshold``,
  ``failure_timeout``, of a group or a resource): running monitors restart with the
  new interval and timeout at once;
* **offered to the plugins**: a changed ``[plugins.NAME]`` table is checked with the
  plugin's ``pulse_configure`` and handed to its ``pulse_reconfigure`` hook; a plugin
  that does not apply it keeps its old settings until a restart (logged);
* **refused**, logged with where the new value is written and "restart pulse to apply
  it", the daemon going on with the old value: everything else (nodes, links, ping
  nodes, changed or removed resource groups, respawn, stonith, the plugins loaded or
  disabled, notify scripts, metrics, the watchdog, ``auto_failback``, ...), whose
  change would need tasks, agents or sockets of the running daemon rebuilt.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from pulse.config.model import Config, ResourceGroup

# Fields of Config a reload applies; compare=False fields (key_lines) never count.
APPLIED = ("timing", "auth", "logging", "max_rexmit_delay", "resource_options")
# Not configuration but bookkeeping of the load: never a "change".
IGNORED = ("parameters", "origin", "key_lines")
WHY_REFUSED = "restart pulse to apply it (systemctl restart pulse)"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadPlan:
    config: Config  # the running configuration with the applied changes
    applied: tuple[str, ...]  # field names changed
    refused: tuple[str, ...]  # one line per refused change, with where it is written
    added_groups: tuple[ResourceGroup, ...] = ()  # applied as "groups"
    retuned_groups: tuple[ResourceGroup, ...] = ()  # new monitoring settings ("monitoring")
    plugin_tables: tuple[str, ...] = ()  # [plugins.NAME] tables changed: the plugins decide


def plan_reload(running: Config, new: Config) -> ReloadPlan:
    applied: list[str] = []
    refused: list[str] = []
    added_groups: tuple[ResourceGroup, ...] = ()
    retuned_groups: tuple[ResourceGroup, ...] = ()
    plugin_tables: tuple[str, ...] = ()
    updates: dict[str, object] = {}
    for f in dataclasses.fields(Config):
        name = f.name
        if name in IGNORED or not f.compare:
            continue
        old_value, new_value = getattr(running, name), getattr(new, name)
        if old_value == new_value:
            continue
        if name == "plugins":
            plugin_tables = _changed_tables(old_value, new_value)
            updates[name] = new_value
            continue
        if name == "groups":
            added, why = _added_groups(running, new)
            if why:
                refused.append(f"{_where(new, name)}: {why}; {WHY_REFUSED}")
                continue
            kept = tuple(new.groups[: len(running.groups)])
            retuned_groups = tuple(
                g
                for g, old in zip(kept, running.groups, strict=True)
                if _watching(g) != _watching(old)
            )
            if retuned_groups:
                applied.append("monitoring")
            if added:
                applied.append(name)
                added_groups = added
            updates[name] = (*kept, *added)
            continue
        if name in APPLIED:
            applied.append(name)
            updates[name] = new_value
        else:
            refused.append(f"{_where(new, name)}: {_label(name)} changed; {WHY_REFUSED}")
    config = dataclasses.replace(running, **updates) if updates else running  # type: ignore[arg-type]
    return ReloadPlan(
        config=config,
        applied=tuple(applied),
        refused=tuple(refused),
        added_groups=added_groups,
        retuned_groups=retuned_groups,
        plugin_tables=plugin_tables,
    )


def _changed_tables(old: Mapping[str, object], new: Mapping[str, object]) -> tuple[str, ...]:
    return tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


def _added_groups(running: Config, new: Config) -> tuple[tuple[ResourceGroup, ...], str]:
    """The groups *new* adds after the running ones, or why the change is refused."""
    old = [_shape(g) for g in running.groups]
    if [_shape(g) for g in new.groups[: len(old)]] != old:
        return (), "the resource groups (haresources) changed or were removed"
    added = tuple(new.groups[len(old) :])
    strangers = sorted({g.node for g in added if g.node not in running.nodes})
    if strangers:
        return (), f"a new group prefers {', '.join(strangers)}, not in the running node list"
    return added, ""


def _shape(group: ResourceGroup) -> ResourceGroup:
    """A group without where it is written and without its monitoring settings: moving a
    line is not a change, and new monitoring settings are applied (``monitoring``)."""
    resources = tuple(
        dataclasses.replace(r, source=None, monitor=None, on_fail=None) for r in group.resources
    )
    plain = ResourceGroup(node=group.node, resources=resources)
    return dataclasses.replace(plain, source=None)


def _watching(group: ResourceGroup) -> tuple[object, ...]:
    """What monitoring and recovery read of a group (docs/resources.md)."""
    per_resource = tuple((r.monitor, r.on_fail) for r in group.resources)
    return (
        group.monitor,
        group.on_fail,
        group.migration_threshold,
        group.failure_timeout,
        per_resource,
    )


def _label(name: str) -> str:
    return {
        "media": "the links (bcast/ucast/mcast/serial/ping)",
        "groups": "the resource groups (haresources)",
        "nodes": "the node list",
        "resource_options": "[resources]",
    }.get(name, name)


def _where(config: Config, name: str) -> str:
    """``FILE:LINE`` of the setting in the new configuration, as well as it is known."""
    line = 0
    toml_key = {"groups": ("groups",), "media": ("links",), "nodes": ("cluster", "nodes")}
    if config.key_lines:
        line = config.key_lines.get(toml_key.get(name, (name,)), 0)
    else:
        sources = []
        if name == "groups":
            sources = [g.source for g in config.groups]
        elif name == "media":
            sources = [m.source for m in config.media]
        elif name == "respawn":
            sources = [r.source for r in config.respawn]
        found = [s for s in sources if s is not None]
        if found:
            return f"{found[0].file}:{found[0].line}"
        if os.path.isdir(config.origin):
            return os.path.join(config.origin, "ha.cf")
    return f"{config.origin}:{line}" if line else config.origin
