"""`pulse`: the daemon's command line.

Subcommands: ``check`` (validate a config), ``convert`` (legacy -> TOML), ``run``
(the daemon, foreground), and those other installed distributions register in the
``pulse.commands`` entry-point group: ``demo`` (a cluster in network namespaces) comes
from pulse-lab (lab/pyproject.toml), which the daemon's own code never imports.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pulse import __version__
from pulse.cli import Parser, closed_pipe_safe

if TYPE_CHECKING:  # `pulse run` does not import importlib.metadata (docs/performance.md)
    from importlib.metadata import EntryPoint

DEFAULT_CONFIG = "/etc/ha.d"

BUILTIN = ("check", "convert", "run")

#: Entry-point group of extra subcommands: the entry point's name is the subcommand, its
#: object a ``main(argv: list[str]) -> int`` given the arguments after the name. It is
#: imported only when its subcommand runs.
COMMANDS_GROUP = "pulse.commands"

#: Subcommands the README promises that another distribution provides: their help, and
#: the one line printed (exit 2) when that distribution is not installed.
PROVIDED_ELSEWHERE = {
    "demo": (
        "run a demo cluster in network namespaces (root; from pulse-lab)",
        "pulse demo needs pulse-lab: run scripts/demo.sh in a clone of pulse "
        "(or pip install ./lab there)",
    ),
}


def extra_commands() -> dict[str, EntryPoint]:
    """The subcommands installed distributions register, by name (metadata only:
    nothing is imported); a name of a built-in subcommand is ignored."""
    from importlib.metadata import entry_points

    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=COMMANDS_GROUP):
        if ep.name not in BUILTIN:
            found.setdefault(ep.name, ep)
    return found


def build_parser(extras: Mapping[str, EntryPoint] | None = None) -> argparse.ArgumentParser:
    """The parser of the built-in subcommands; *extras* (and the subcommands of
    :data:`PROVIDED_ELSEWHERE`) appear in ``--help`` only, as :func:`main` hands them
    their arguments before parsing."""
    p = Parser(prog="pulse", description="pulse: Heartbeat-compatible HA daemon")
    p.add_argument("--version", action="version", version=f"pulse {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def add_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "-c",
            "--config",
            default=DEFAULT_CONFIG,
            help="a Heartbeat directory (ha.cf, haresources, authkeys) or a pulse TOML file "
            f"(default {DEFAULT_CONFIG})",
        )
        sp.add_argument("--node", help="this node's name (default: nodeinfo, else uname -n)")

    sp = sub.add_parser("check", help="validate a configuration and print a summary")
    add_config(sp)
    sp = sub.add_parser("convert", help="print a legacy configuration as pulse TOML")
    add_config(sp)
    sp = sub.add_parser("run", help="run the daemon in the foreground")
    add_config(sp)
    sp.add_argument("--control-socket", help="pulsectl socket path (default /run/pulse/control)")
    sp.add_argument("--state-dir", help="generation/uuid directory (default /var/lib/heartbeat)")
    sp.add_argument(
        "--control-group",
        help="members of this group may read status, plugins and metrics "
        "(socket mode 0660; default: root only, or [control] group)",
    )
    extras = extras or {}
    for name in sorted({*extras, *PROVIDED_ELSEWHERE}):
        if name in PROVIDED_ELSEWHERE:
            help_text = PROVIDED_ELSEWHERE[name][0]
        else:
            dist = extras[name].dist
            help_text = f"from {dist.name}" if dist is not None else "from an extension"
        sub.add_parser(name, help=help_text, add_help=False)
    return p


def run_extra(name: str, args: list[str], extras: Mapping[str, EntryPoint]) -> int:
    """Run the subcommand *name* that another distribution provides, or say which one
    to install (exit 2)."""
    if name not in extras:
        print(PROVIDED_ELSEWHERE[name][1], file=sys.stderr)
        return 2
    try:
        command: Callable[[list[str]], int] = extras[name].load()
    except (ImportError, AttributeError) as exc:
        print(f"pulse {name}: cannot load {extras[name].value}: {exc}", file=sys.stderr)
        return 2
    return command(args)


@closed_pipe_safe
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    extras: dict[str, EntryPoint] = {}
    if not args or args[0] not in BUILTIN:
        extras = extra_commands()  # `pulse run` does not even read other packages' metadata
    if args and (args[0] in extras or args[0] in PROVIDED_ELSEWHERE):
        try:
            return run_extra(args[0], args[1:], extras)
        except KeyboardInterrupt:
            return 130
    ns = build_parser(extras).parse_args(args)
    try:
        if ns.command in ("check", "convert"):
            from pulse.cli import check

            return check.run_check(ns) if ns.command == "check" else check.run_convert(ns)
        if ns.command == "run":
            from pulse.cli import run

            return run.run(ns)
    except KeyboardInterrupt:
        return 130
    print(f"pulse: unknown command {ns.command}", file=sys.stderr)
    return 2
