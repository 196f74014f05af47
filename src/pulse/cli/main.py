"""`pulse`: the daemon's command line.

Subcommands: ``check`` (validate a config), ``convert`` (legacy -> TOML), ``run``
(the daemon, foreground) and ``demo`` (a cluster in network namespaces).
"""

from __future__ import annotations

import argparse
import sys

from pulse import __version__
from pulse.cli import closed_pipe_safe

DEFAULT_CONFIG = "/etc/ha.d"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pulse", description="pulse: Heartbeat-compatible HA daemon")
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
    sp = sub.add_parser("demo", help="run a demo cluster in network namespaces (root)")
    sp.add_argument("--nodes", type=int, default=2, choices=(2, 3))
    sp.add_argument("--keep-going", action="store_true", help=argparse.SUPPRESS)
    return p


@closed_pipe_safe
def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        if ns.command in ("check", "convert"):
            from pulse.cli import check

            return check.run_check(ns) if ns.command == "check" else check.run_convert(ns)
        if ns.command == "run":
            from pulse.cli import run

            return run.run(ns)
        if ns.command == "demo":
            from pulse import demo

            return demo.main(ns)
    except KeyboardInterrupt:
        return 130
    print(f"pulse: unknown command {ns.command}", file=sys.stderr)
    return 2
