"""Configuration loading: Heartbeat's ha.cf/haresources/authkeys or pulse TOML.

>>> loaded = load_config("/etc/ha.d", node="prime")       # doctest: +SKIP
>>> loaded.config.timing.deadtime, loaded.node, loaded.warnings  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from pulse.config.checks import host_facts, path_exists, sorted_diagnostics
from pulse.config.model import Config
from pulse.errors import ConfigError, Diagnostic, Severity

__all__ = ["Loaded", "load_config"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    config: Config
    node: str  # the local node name (lower-cased), validated to be in config.nodes
    warnings: tuple[Diagnostic, ...]  # non-fatal findings (severity WARNING)


def load_config(
    path: str | os.PathLike[str],
    *,
    node: str | None = None,
    strict_host: bool = False,
    provided_agents: Callable[[Config, str], Collection[str]] | None = None,
) -> Loaded:
    """Load a configuration and check it completely.

    ``path``: a directory holding ha.cf, haresources, authkeys (Heartbeat layout), a
    path to ha.cf itself, or a ``.toml`` file. ``node`` overrides the local node name
    (else ``<dir>/nodeinfo``'s first line, else ``os.uname().nodename``), lower-cased
    as Heartbeat does. Facts about this machine (interfaces, serial devices, resource
    scripts) are warnings unless ``strict_host`` (used by ``pulse run``).
    ``provided_agents(config, node)`` names the resource agents plugins provide, which
    are then not looked for as script files (``pulse.plugin.host.plugin_agent_names``).

    Raises :class:`ConfigError` listing every error found, in file/line order.
    """
    p = Path(os.fspath(path))
    config: Config | None
    if p.suffix == ".toml" and not p.is_dir():
        from pulse.config.toml import load_toml

        config, local, diags = load_toml(p, node)
    else:
        from pulse.config.legacy import load_legacy

        if p.is_dir():
            hacf = p / "ha.cf"
        elif path_exists(p) or p.name == "ha.cf":
            hacf = p
        else:
            raise ConfigError([Diagnostic(str(p), 0, "no such file or directory")])
        config, local, diags = load_legacy(hacf, node)
    if config is not None:
        provided = provided_agents(config, local) if provided_agents is not None else None
        diags.extend(host_facts(config, strict=strict_host, provided_agents=provided))
    ordered = sorted_diagnostics(diags)
    errors = [d for d in ordered if d.severity is Severity.ERROR]
    if errors or config is None:
        raise ConfigError(errors or [Diagnostic(str(p), 0, "configuration unusable")])
    warnings = tuple(d for d in ordered if d.severity is Severity.WARNING)
    return Loaded(config=config, node=local, warnings=warnings)
