"""`pulsectl`: talk to the local pulse daemon over its control socket.

Exit codes follow LSB ``status``: 0 running, 3 not running, 4 unknown (error).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any

from pulse import __version__
from pulse.cli import Parser, closed_pipe_safe
from pulse.control.protocol import DEFAULT_SOCKET, MAX_LINE, Reply, Request

EXIT_RUNNING = 0
EXIT_NOT_RUNNING = 3
EXIT_UNKNOWN = 4
CONNECT_RETRY = 3.0  # seconds to keep retrying a connect the daemon's backlog refused
CONNECT_PAUSE = 0.01
TEXT_TRANSITIONS = 5  # transitions per group in the text status (--json has the last 20)


class NotRunning(Exception):
    pass


def _connect(path: str, timeout: float, retry_for: float) -> socket.socket:
    """A socket connected to *path*. A full listen backlog (EAGAIN: other clients, maybe
    abusive ones, got there first) is retried with a growing pause for *retry_for* s."""
    deadline = time.monotonic() + retry_for
    pause = CONNECT_PAUSE
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            s.close()
            raise NotRunning(str(exc)) from exc
        except BlockingIOError:
            s.close()
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
            continue
        except BaseException:
            s.close()
            raise
        return s


def call(
    path: str, request: Request, timeout: float = 10.0, *, retry_for: float = CONNECT_RETRY
) -> Reply:
    """One request/reply round trip (blocking: pulsectl is a plain CLI)."""
    s = _connect(path, timeout, retry_for)
    try:
        s.sendall(request.encode())
        buf = bytearray()
        while b"\n" not in buf and len(buf) <= MAX_LINE:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    return Reply.decode(bytes(buf).split(b"\n", 1)[0])


def format_status(st: dict[str, Any]) -> str:
    cl = st["cluster"]
    res = st.get("resources")
    lines = (
        ["MAINTENANCE: nothing is started, stopped or monitored", ""]
        if (res and res.get("maintenance"))
        else []
    )
    lines += [
        f"pulse {st['version']} on {st['node']}: {cl['local_status']}"
        f"{' (communications up)' if cl['comms_up'] else ' (waiting for peers)'}, "
        f"generation {cl['generation']}, up {st['uptime']:.0f}s",
        "",
        f"{'NODE':<20} {'STATUS':<8} LINKS",
    ]
    for n in cl["nodes"]:
        if n["name"] == cl["local"]:
            links = "(this node)"
        else:
            links = ", ".join(f"{k} {v}" for k, v in n["links"].items()) or "-"
        lines.append(f"{n['name']:<20} {n['status']:<8} {links}")
    if res and res["groups"]:
        lines += ["", f"{'GROUP':<24} {'HOLDER':<12} {'STATE':<9} REASON"]
        plugins = _plugin_group_status(st.get("plugins") or {})
        for g in res["groups"]:
            holder = g["holder"] or "-"
            lines.append(f"{g['key']:<24} {holder:<12} {g['state']:<9} {g['reason']}")
            for name, fields in plugins.get(g["key"], []):
                lines.append(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in fields.items()))
            lines += _resource_lines(g.get("resources") or [])
            lines += _transition_lines(g.get("transitions") or [])
    if res:
        lines += ["", f"decision: {res['decision']}"]
        if res["standby"]:
            lines.append("standby: " + " ".join(res["standby"]))
        ipf = res.get("ipfail")
        if ipf:
            seen = f"{len(ipf['reachable'])}/{len(ipf['ping_nodes'])} ping nodes"
            peers = ", ".join(f"{k} {v}" for k, v in ipf["peers"].items()) or "no peer count yet"
            state = (
                "giving up to a better-connected peer"
                if ipf["giving_up"]
                else ("giveup pending" if ipf["giveup_at"] is not None else "balanced")
            )
            lines.append(f"ipfail: this node sees {seen}; peers: {peers}; {state}")
    programs = st.get("respawn") or []
    if programs:
        lines += ["", f"{'PROGRAM':<40} {'STATE':<10} {'PID':>7}  RESTARTS"]
        for p in programs:
            pid = "-" if p["pid"] is None else str(p["pid"])
            lines.append(f"{p['command']:<40} {p['state']:<10} {pid:>7}  {p['restarts']}")
    counters = {k: v for k, v in st.get("wire", {}).items() if v}
    # "own": our own packets that came back too late for the link to recognise them
    # (after a burst) and that the engine dropped by their src; not news.
    counters.update({k: v for k, v in cl.get("counters", {}).items() if v and k != "own"})
    if counters:
        lines += ["", "packets: " + ", ".join(f"{k} {v}" for k, v in sorted(counters.items()))]
    return "\n".join(lines)


@closed_pipe_safe
def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="pulsectl", description="Control the local pulse daemon.")
    p.add_argument("--version", action="version", version=f"pulsectl (pulse) {__version__}")
    p.add_argument(
        "-s",
        "--socket",
        default=os.environ.get("PULSE_CONTROL_SOCKET", DEFAULT_SOCKET),
        help=f"control socket (default {DEFAULT_SOCKET}, or $PULSE_CONTROL_SOCKET)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("status", help="show nodes, links, resource groups and decisions")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    for verb, text in (
        ("standby", "give resources away to the other node(s) (hb_standby)"),
        ("takeover", "take resources over from the other node(s) (hb_takeover)"),
    ):
        sp = sub.add_parser(verb, help=text)
        sp.add_argument(
            "what",
            nargs="?",
            default="all",
            choices=("all", "foreign", "local", "failback"),
            help="which groups, relative to this node (default: all)",
        )
    sp = sub.add_parser(
        "cleanup", help="forget fail counts and failed marks of a group, on every node"
    )
    sp.add_argument("what", nargs="?", default="all", metavar="GROUP", help="default: all")
    sp = sub.add_parser(
        "maintenance", help="on: start, stop and monitor nothing, on every node; off: resume"
    )
    sp.add_argument("what", choices=("on", "off"))
    sp = sub.add_parser("plugins", help="list loaded plugins, their versions and health")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("metrics", help="print the metrics in the Prometheus text format")
    ns = p.parse_args(argv)
    args = (
        {"what": ns.what} if ns.command in ("standby", "takeover", "cleanup", "maintenance") else {}
    )

    try:
        reply = call(ns.socket, Request(ns.command, args))
    except NotRunning:
        print(f"pulse is not running (no daemon at {ns.socket})", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except (OSError, ValueError) as exc:
        print(f"pulsectl: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    if not reply.ok:
        print(f"pulsectl: {reply.error}", file=sys.stderr)
        return EXIT_UNKNOWN
    if ns.command == "status":
        if ns.json:
            print(json.dumps(reply.result, indent=2, sort_keys=True))
        else:
            print(format_status(reply.result))
    elif ns.command == "plugins":
        if ns.json:
            print(json.dumps(reply.result, indent=2, sort_keys=True))
        else:
            print(format_plugins(reply.result))
    elif ns.command == "metrics":
        sys.stdout.write(str(reply.result))
    else:
        print(reply.result)
    return EXIT_RUNNING


def _plugin_group_status(plugins: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per group, what each plugin object says of it: the ``groups`` entry of its
    ``statistics()`` (docs/plugins/hooks.md), e.g. pulse-etcd's lease holder."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, st in sorted(plugins.get("listeners", {}).items()):
        groups = (st.get("details") or {}).get("groups")
        if not isinstance(groups, dict):
            continue
        for group, fields in groups.items():
            if isinstance(fields, dict) and fields:
                out.setdefault(str(group), []).append((name, fields))
    return out


def _transition_lines(transitions: list[dict[str, str]]) -> list[str]:
    """The group's last few transitions, oldest first (all of them: ``--json``)."""
    recent = transitions[-TEXT_TRANSITIONS:]
    if not recent:
        return []
    more = len(transitions) - len(recent)
    head = f"  last {len(recent)} transitions" + (f" (of {len(transitions)})" if more else "")
    return [head + ":", *(f"    {t['when']}  {t['what']}" for t in recent)]


def _resource_lines(resources: list[dict[str, Any]]) -> list[str]:
    """Monitored resources of a group: state, last check, fail counts, last failure."""
    lines: list[str] = []
    for r in resources:
        if not r.get("monitored"):
            continue
        seen = r.get("last_monitor") or {}
        counts = ", ".join(f"{n} {c}" for n, c in r["fail_counts"].items()) or "none"
        when = seen.get("when", "never")
        lines.append(f"  {r['name']}: {r['state']} (checked {when}; fail counts: {counts})")
        failure = r.get("last_failure")
        if failure:
            code = "" if failure["code"] is None else f" [exit {failure['code']}]"
            lines.append(f"    last failure {failure['when']}{code}: {failure['reason']}")
    return lines


def format_plugins(info: dict[str, Any]) -> str:
    lines = [f"{'PLUGIN':<20} {'VERSION':<10} MODULE"]
    for p in info["loaded"]:
        lines.append(f"{p['name']:<20} {p['version'] or '-':<10} {p['module']}")
    if len(lines) == 1:
        lines = ["no plugins loaded"]
    if info.get("blocked"):
        lines.append("disabled: " + ", ".join(info["blocked"]))
    health = {**info.get("listeners", {}), **info.get("checks_and_fencing", {})}
    for name, st in sorted(health.items()):
        if st["failures"] or st["dropped"]:
            lines.append(
                f"{name}: {st['failures']} failure(s), {st['dropped']} dropped event(s); "
                f"last error: {st['last_error']}"
            )
    for name, st in sorted(info.get("listeners", {}).items()):
        details = {k: v for k, v in (st.get("details") or {}).items() if k != "groups"}
        if details:  # "groups" is shown per group by pulsectl status
            lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in details.items()))
    for node, state in sorted(info.get("fencing", {}).items()):
        lines.append(f"fencing {node}: {state}")
    return "\n".join(lines)
