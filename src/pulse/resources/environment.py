"""Heartbeat's environment for the programs it runs, built once per daemon.

Resource scripts, OCF agents, respawned programs and notify scripts all see the
environment Heartbeat gives its children (docs/heartbeat.md#parameters-as-environment):
pulse's own environment, every ha.cf directive as ``HA_<name>``, Heartbeat's fixed
``HA_*`` variables, ``OCF_ROOT``, every ``env NAME=value`` line as ``HA_NAME``, and
``HA_CURHOST``. :func:`child_environment` builds it; the daemon calls it once at
start-up and hands the result to every agent and to the respawn supervisor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pulse.config.model import Config
from pulse.resources.scripts import DEFAULT_OCF_ROOT, DEFAULT_RESOURCE_DIR, script_environment


@dataclass(frozen=True, slots=True)
class ChildEnvironment:
    """The environment of every child, and the two directories it names."""

    variables: Mapping[str, str]
    ocf_root: str
    resource_dir: str


def resource_dir_of(config: Config) -> str:
    """Where Heartbeat's ``resource.d`` scripts are (ha.cf's resource directory)."""
    return config.resource_dir or DEFAULT_RESOURCE_DIR


def env_directives(config: Config) -> dict[str, str]:
    """``env NAME=value`` lines as Heartbeat exports them: ``HA_NAME=value``."""
    return {f"HA_{name}": value for name, value in config.env}


def child_environment(
    config: Config,
    *,
    node: str | None = None,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> ChildEnvironment:
    """The environment for *node*'s children; ``extra`` (tests, ``pulse run``) goes last.

    ``OCF_ROOT`` in ``extra`` (or in pulse's own environment) moves the OCF agent tree.
    """
    last: dict[str, str] = {"HA_CURHOST": node} if node is not None else {}
    last |= env_directives(config)
    last |= dict(extra or {})
    environ = os.environ if base is None else base
    ocf_root = last.get("OCF_ROOT") or environ.get("OCF_ROOT") or DEFAULT_OCF_ROOT
    resource_dir = resource_dir_of(config)
    variables = script_environment(
        config, resource_dir=resource_dir, ocf_root=ocf_root, extra=last, base=base
    )
    return ChildEnvironment(variables=variables, ocf_root=ocf_root, resource_dir=resource_dir)


__all__ = ["ChildEnvironment", "child_environment", "env_directives", "resource_dir_of"]
