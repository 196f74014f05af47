"""pulse-mysql: MySQL/MariaDB replication as a takeover gate and as the promotion step.

Hooks (all synchronous, they only validate and build objects):

* ``pulse_configure``: checks ``[plugins.mysql]`` and every ``MySQLReplica::k=v`` word
  (``FILE:LINE`` diagnostics with a fix);
* ``pulse_register_resource_agents``: ``MySQLReplica`` -> :class:`MySQLReplicaAgent`;
* ``pulse_register_takeover_checks``: one :class:`ReplicationCheck` per group with a
  ``MySQLReplica`` word or listed in ``[plugins.mysql] groups``.

See README.md for the configuration and the exact rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pulse import hookimpl
from pulse.config.model import Config, ResourceSpec
from pulse.errors import Diagnostic, Severity
from pulse.plugin.api import AgentFactory, TakeoverCheck
from pulse.resources import ResourceAgent
from pulse.resources.agents import UnusableAgent
from pulse.resources.ipaddr import IP_AGENTS, is_bare_ip
from pulse_mysql.agent import MySQLReplicaAgent
from pulse_mysql.check import ReplicationCheck, wait_promotable
from pulse_mysql.client import MySQLError, PyMySQLServer, Server
from pulse_mysql.replication import Policy, ReplicaStatus, Verdict, assess
from pulse_mysql.settings import (
    AGENT,
    PLUGIN,
    MySQLSettings,
    gated_groups,
    listed_groups,
    mysql_words,
    plugin_table,
    resolve,
    settings_for_group,
)

__all__ = [
    "AGENT",
    "PLUGIN",
    "MySQLError",
    "MySQLReplicaAgent",
    "MySQLSettings",
    "Policy",
    "PyMySQLServer",
    "ReplicaStatus",
    "ReplicationCheck",
    "Server",
    "Verdict",
    "assess",
    "make_agent",
    "pulse_configure",
    "pulse_register_resource_agents",
    "pulse_register_takeover_checks",
    "wait_promotable",
]


def _in_use(config: Config) -> bool:
    return PLUGIN in config.plugins or any(mysql_words(g) for g in config.groups)


def _is_address(spec: ResourceSpec) -> bool:
    return spec.agent in IP_AGENTS or is_bare_ip(spec.raw)


@hookimpl
def pulse_configure(config: Config, node: str) -> Iterable[Diagnostic] | None:
    if not _in_use(config):
        return None
    diags: list[Diagnostic] = []

    def add(items: Iterable[Diagnostic]) -> None:
        for d in items:
            if d not in diags:
                diags.append(d)

    base, problems = resolve(config)
    add(problems)
    _, problems = listed_groups(config)
    add(problems)
    everything: list[tuple[MySQLSettings, ResourceSpec | None]] = [(base, None)]
    for group in config.groups:
        words = mysql_words(group)
        for spec in words:
            settings, problems = resolve(config, spec)
            add(problems)
            everything.append((settings, spec))
            file, line = (spec.source.file, spec.source.line) if spec.source else (config.origin, 0)
            position = group.resources.index(spec)
            if any(_is_address(r) for r in group.resources[:position]):
                add(
                    [
                        Diagnostic(
                            file,
                            line,
                            f"{AGENT} comes after a floating IP in group {group.key}: clients "
                            "would reach a read-only server; put it before the address",
                            Severity.WARNING,
                        )
                    ]
                )
        if len(words) > 1:
            spec = words[1]
            file, line = (spec.source.file, spec.source.line) if spec.source else (config.origin, 0)
            add(
                [
                    Diagnostic(
                        file,
                        line,
                        f"group {group.key} has {len(words)} {AGENT} resources; the takeover "
                        "check reads the first one's server only",
                        Severity.WARNING,
                    )
                ]
            )
    for settings, word in everything:
        rejoin = settings.rejoin
        if rejoin is not None and not rejoin.user:
            if word is not None and word.source is not None:
                file, line = word.source.file, word.source.line
            else:
                file, line = config.origin, 0
            add(
                [
                    Diagnostic(
                        file,
                        line,
                        "rejoin_host needs rejoin_user (and rejoin_password in "
                        "[plugins.mysql] or in the defaults_file's [pulse] section)",
                    )
                ]
            )
    if plugin_table(config) and not gated_groups(config):
        add(
            [
                Diagnostic(
                    config.origin,
                    0,
                    f"[plugins.{PLUGIN}] applies to no group: add a {AGENT} resource to a "
                    f"group or list group names in plugins.{PLUGIN}.groups",
                    Severity.WARNING,
                )
            ]
        )
    return diags


def make_agent(spec: ResourceSpec, config: Config) -> ResourceAgent:
    """The factory registered as ``MySQLReplica``; never raises."""
    settings, problems = resolve(config, spec)
    errors = [d.message for d in problems if d.severity is Severity.ERROR]
    if errors:
        return UnusableAgent(spec, "; ".join(errors))
    return MySQLReplicaAgent(spec, settings=settings, server=PyMySQLServer(settings.connection))


@hookimpl
def pulse_register_resource_agents(config: Config, node: str) -> Mapping[str, AgentFactory]:
    return {AGENT: make_agent}


@hookimpl
def pulse_register_takeover_checks(config: Config, node: str) -> Iterable[TakeoverCheck] | None:
    checks: list[TakeoverCheck] = []
    for group in gated_groups(config):
        settings = settings_for_group(config, group)
        checks.append(
            ReplicationCheck(
                group=group.key,
                settings=settings,
                server=PyMySQLServer(settings.connection),
            )
        )
    return checks
