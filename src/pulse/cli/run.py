"""`pulse run`: load the config strictly, set up logging, run the daemon in the foreground.

First of all, :mod:`pulse.cli.lean` keeps out of memory what the daemon does not need
(OpenSSL: about 5 MiB resident, docs/performance.md); with no plugin installed (or all
disabled) the plugin host does not scan the entry points either, so ``importlib.metadata``
is never imported. The daemon is imported once the configuration and the plugins are
loaded.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path

from pulse.cli import lean
from pulse.config import Loaded, load_config
from pulse.config.model import Config
from pulse.control.protocol import DEFAULT_SOCKET
from pulse.errors import ConfigError, PulseError
from pulse.instance import AlreadyRunning, single_instance
from pulse.plugin.host import PluginHost, errors_of, load_plugins, plugin_agent_names

# Shared with Heartbeat, so a migrated node keeps its hb_uuid and continues hb_generation.
DEFAULT_STATE_DIR = "/var/lib/heartbeat"


def run(ns: argparse.Namespace) -> int:
    lean.defer()
    installed = lean.plugins_installed()
    if not installed:
        lean.builtin_hashes()
    # With no plugin to load, the host does not scan the entry points either (that would
    # import importlib.metadata); every installed plugin is disabled, so none is loaded.
    agents = functools.partial(plugin_agent_names, load_entrypoints=installed)
    try:
        loaded = load_config(ns.config, node=ns.node, strict_host=True, provided_agents=agents)
    except ConfigError as exc:
        for d in exc.diagnostics:
            print(d, file=sys.stderr)
        print("pulse: not started: configuration error.", file=sys.stderr)
        return 1
    for w in loaded.warnings:
        print(w, file=sys.stderr)
    plugins, diags = load_plugins(loaded.config, loaded.node, load_entrypoints=installed)
    for d in diags:
        print(d, file=sys.stderr)
    if errors_of(diags):
        print("pulse: not started: plugin configuration error.", file=sys.stderr)
        return 1
    state_dir = Path(ns.state_dir or DEFAULT_STATE_DIR)
    try:
        with single_instance(state_dir):
            return _run_locked(loaded, plugins, state_dir, ns, agents)
    except AlreadyRunning as exc:
        print(f"pulse: not started: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pulse: not started: cannot lock {state_dir}: {exc}", file=sys.stderr)
        return 1


def _run_locked(
    loaded: Loaded,
    plugins: PluginHost | None,
    state_dir: Path,
    ns: argparse.Namespace,
    agents: Callable[[Config, str], set[str]],
) -> int:
    import trio

    from pulse import logsetup
    from pulse.daemon import DaemonOptions, serve

    try:
        logsetup.configure(loaded.config.logging)
    except OSError as exc:
        print(f"pulse: cannot open log file: {exc}", file=sys.stderr)
        return 1
    options = DaemonOptions(
        state_dir=state_dir,
        control_socket=Path(ns.control_socket or DEFAULT_SOCKET),
        control_group=ns.control_group,
        plugins=plugins,
        kernel_timer=True,
        trim_memory=True,
        remember_peers=True,
        systemd_notify=True,
        watchdog_device=True,
        reloader=functools.partial(
            load_config,
            ns.config,
            node=loaded.node,
            strict_host=True,
            provided_agents=agents,
        ),
    )
    status = 0
    try:
        trio.run(serve, loaded, options)
    except* (PulseError, OSError) as group:
        # Failures to open a link or the control socket: one clear line each, no traceback.
        for leaf in _leaves(group):
            print(f"pulse: {leaf}", file=sys.stderr)
        status = 1
    finally:
        logsetup.shutdown()
    return status


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out
