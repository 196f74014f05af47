"""Helpers for the failover end-to-end tests: pulse nodes, web servers, HTTP clients.

The set-ups of the user's configs in tests/data/legacy/ are rebuilt in network
namespaces with real ``pulse run`` daemons (:class:`FailoverNode`, a
:class:`~pulse_lab.cluster.PulseNode` that can be given its own environment and its own
``/etc/init.d``), real floating IPs, web servers answering with their node's name, and
``curl`` as the client. Every wait is bounded and says what it waited for when it gives up.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulse_lab.cluster import PULSE, PulseNode, ha_cf, wait_for
from pulse_lab.demo import WEB_SCRIPT
from pulse_lab.netns import Iface, Lan, Node, Topology

# Nodes advertise deadtime + 2 s during their first 5 s (Heartbeat's start-up grace);
# a hard failure is only detected within deadtime once this much time has passed.
STARTUP_GRACE = 5.5
HTTP_TIMEOUT = 0.4  # seconds for one client request (everything is on one host)
POLL = 0.03


LSB_SCRIPT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          webapp
# Required-Start:    $network
# Required-Stop:     $network
# Short-Description: a web server answering with this node's name
### END INIT INFO
PIDFILE={pidfile}
running() {{ [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
case "$1" in
  start)
    running && exit 0
    # A subshell stays the server's parent and reaps it when it dies (a zombie would
    # answer kill -0 in `status`), as demo-web does (lab/src/pulse_lab/demo.py).
    ( {python} -m http.server --bind 0.0.0.0 80 --directory {docroot} &
      echo $! > "$PIDFILE"; wait ) >/dev/null 2>&1 &
    i=0
    while [ $i -lt 100 ]; do
        {python} -c 'import socket; socket.create_connection(("127.0.0.1", 80), 0.05)' \\
            2>/dev/null && exit 0
        i=$((i + 1)); sleep 0.05
    done
    exit 1 ;;
  stop)
    running && kill "$(cat "$PIDFILE")"
    rm -f "$PIDFILE"
    exit 0 ;;
  status)
    running && exit 0
    exit 3 ;;
  *) echo "Usage: $0 {{start|stop|status}}" >&2; exit 2 ;;
esac
"""


def lsb_web_init_dir(workdir: Path, name: str) -> Path:
    """``WORKDIR/NAME/init.d`` holding ``webapp``, an LSB init script serving NAME's page
    (pid file ``WORKDIR/NAME/webapp.pid``); give it to :class:`FailoverNode` as init_dir."""
    init_dir = workdir / name / "init.d"
    init_dir.mkdir(parents=True)
    docroot = workdir / name / "www"
    docroot.mkdir(exist_ok=True)
    (docroot / "index.html").write_text(name + "\n")
    script = init_dir / "webapp"
    pidfile = workdir / name / "webapp.pid"
    script.write_text(LSB_SCRIPT.format(python=sys.executable, docroot=docroot, pidfile=pidfile))
    script.chmod(0o755)
    return init_dir


def web_script(workdir: Path, name: str) -> str:
    """The demo's stand-in for ``/etc/init.d/apache2``: serves a page holding *name*."""
    docroot = workdir / name / "www"
    docroot.mkdir(parents=True, exist_ok=True)
    (docroot / "index.html").write_text(name + "\n")
    return WEB_SCRIPT.format(python=sys.executable, docroot=docroot, workdir=workdir / name)


class FailoverNode(PulseNode):
    """A :class:`PulseNode` with extra environment and, optionally, its own init.d.

    ``init_dir`` is bind-mounted over ``/etc/init.d`` in a private mount namespace
    of the daemon (pulse looks for LSB scripts only there, and the path cannot be
    configured), so the host's ``/etc/init.d`` is never touched.
    """

    def __init__(
        self,
        topology: Topology,
        node: Node,
        workdir: Path,
        *,
        name: str,
        ha_cf: str,
        haresources: str = "",
        scripts: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        init_dir: Path | None = None,
    ) -> None:
        super().__init__(
            topology, node, workdir, name=name, ha_cf=ha_cf, haresources=haresources,
            scripts=scripts,
        )  # fmt: skip
        self.env = dict(env or {})
        self.init_dir = init_dir
        self.started_at = 0.0
        self.config_path: Path = self.dir  # the ha.d directory, or a TOML file (use_toml)

    def start(self) -> None:
        if os.path.exists(self.socket):
            os.unlink(self.socket)  # a killed daemon leaves it behind
        argv = [
            *PULSE, "run", "-c", str(self.config_path), "--node", self.name,
            "--control-socket", self.socket, "--state-dir", str(self.dir / "state"),
        ]  # fmt: skip
        if self.init_dir is not None:
            mount = 'mount --bind "$0" /etc/init.d && exec "$@"'
            argv = ["unshare", "--mount", "--propagation", "private",
                    "sh", "-c", mount, str(self.init_dir), *argv]  # fmt: skip
        env = {**os.environ, **self.env}
        with open(self.logfile, "ab") as out:
            self.proc = self.topology.popen(
                self.node, argv, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        self.started_at = time.monotonic()
        wait_for(self._listening, 10, f"{self.name}'s control socket")

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()}")
        return os.path.exists(self.socket)

    def group(self, key: str) -> dict[str, Any]:
        for g in self.status()["resources"]["groups"]:
            if g["key"] == key:
                result: dict[str, Any] = g
                return result
        raise KeyError(key)

    def stable(self) -> bool:
        return bool(self.status()["resources"]["stable"])

    def wait_holder(self, key: str, who: str, timeout: float) -> float:
        """Wait until this node sees *who* holding *key*, running."""

        def held() -> bool:
            g = self.group(key)
            return bool(g["holder"] == who and g["state"] == "running")

        return wait_for(held, timeout, f"{who} holding {key} (as {self.name} sees it)")


def start_all(nodes: Iterable[FailoverNode]) -> None:
    for node in nodes:
        node.start()


def wait_past_startup_grace(nodes: Iterable[FailoverNode]) -> None:
    """Sleep until every node advertises its real deadtime (see STARTUP_GRACE).

    Counted from each daemon's own start (its status ``uptime``), not from the moment
    its process was spawned: on a loaded machine the interpreter takes a second or more
    to get there, and a node still in its grace keeps its peers from declaring it dead
    within deadtime.
    """
    nodes = list(nodes)
    latest = max(n.started_at for n in nodes)
    time.sleep(max(0.0, latest + STARTUP_GRACE - time.monotonic()))
    for _ in range(100):  # bounded: each round sleeps what the slowest node still needs
        behind = max(STARTUP_GRACE - float(n.status()["uptime"]) for n in nodes)
        if behind <= 0:
            return
        time.sleep(behind)


# --------------------------------------------------------------------------- web


def serve_name(topology: Topology, node: Node, workdir: Path) -> subprocess.Popen[Any]:
    """A web server on every address of *node* answering with its name (not a resource:
    whoever holds the floating IP answers for it)."""
    docroot = workdir / f"www-{node.name}"
    docroot.mkdir(parents=True, exist_ok=True)
    (docroot / "index.html").write_text(node.name + "\n")
    argv = [sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "80",
            "--directory", str(docroot)]  # fmt: skip
    proc = topology.popen(node, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = "import socket; socket.create_connection(('127.0.0.1', 80), 0.2)"
    wait_for(
        lambda: topology.run(node, [sys.executable, "-c", probe], check=False).returncode == 0,
        10,
        f"the web server on {node.name}",
    )
    return proc


def fetch(topology: Topology, client: Node, ip: str, timeout: float = HTTP_TIMEOUT) -> str | None:
    """The page at http://IP/ as the client gets it now (stripped), or None."""
    argv = ["curl", "--silent", "--fail", "--noproxy", "*", "--max-time", str(timeout),
            f"http://{ip}/"]  # fmt: skip
    done = topology.run(client, argv, check=False, timeout=timeout + 5)
    return done.stdout.strip() if done.returncode == 0 else None


def wait_serving(topology: Topology, client: Node, ip: str, who: str, timeout: float) -> float:
    """Poll until *who* answers http://IP/ for the client; returns the seconds taken."""
    start = time.monotonic()
    deadline = start + timeout
    seen: list[str | None] = []
    while True:
        got = fetch(topology, client, ip)
        if got == who:
            return time.monotonic() - start
        if not seen or seen[-1] != got:
            seen.append(got)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{who} did not serve http://{ip}/ within {timeout}s; the client saw {seen}"
            )
        time.sleep(POLL)


def assert_keeps_serving(
    topology: Topology, client: Node, ip: str, who: str, seconds: float
) -> None:
    """Every request for *seconds* must be answered by *who*."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = fetch(topology, client, ip, timeout=1.0)
        assert got == who, f"http://{ip}/ answered by {got!r}, expected {who} throughout"
        time.sleep(0.1)


# --------------------------------------------------------------------------- addresses


def addresses(topology: Topology, node: Node, ifname: str) -> set[str]:
    out = topology.run(node, ["ip", "-4", "-j", "addr", "show", "dev", ifname]).stdout
    entries: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return {str(a["local"]) for e in entries for a in e.get("addr_info", [])}


def mac_of(topology: Topology, node: Node, ifname: str) -> str:
    out = topology.run(node, ["ip", "-j", "link", "show", "dev", ifname]).stdout
    return str(json.loads(out)[0]["address"])


def neighbour(topology: Topology, node: Node, ip: str, ifname: str) -> tuple[str | None, str]:
    """(MAC, state) of *node*'s neighbour entry for *ip* (MAC None when unresolved)."""
    out = topology.run(node, ["ip", "-4", "-j", "neigh", "show", ip, "dev", ifname]).stdout
    entries: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    if not entries:
        return None, "NONE"
    mac = entries[0].get("lladdr")
    return (None if mac is None else str(mac)), ",".join(entries[0].get("state", []))


def drop_addresses(topology: Topology, node: Node, ifname: str, ips: Iterable[str]) -> None:
    """What a reboot does to a crashed node's floating addresses."""
    for ip in ips:
        topology.run(node, ["ip", "addr", "del", f"{ip}/24", "dev", ifname], check=False)


def processes_matching(pattern: str) -> list[str]:
    done = subprocess.run(
        ["pgrep", "-af", pattern], capture_output=True, text=True, timeout=10, check=False
    )
    return [line for line in done.stdout.splitlines() if line.strip()]


def describe(nodes: Iterable[FailoverNode]) -> str:
    """Every node's log tail, for assertion messages."""
    parts = []
    for n in nodes:
        tail = "\n".join(n.log().splitlines()[-25:])
        parts.append(f"--- {n.name} ({shlex.quote(str(n.logfile))})\n{tail}")
    return "\n".join(parts)


# --------------------------------------------------------------------------- clusters


@dataclass
class WebCluster:
    """The web pair's or three nodes' set-up: ``bcast eth0``, ``FIRST VIP SCRIPT``, a LAN client."""

    topology: Topology
    vip: str
    nodes: dict[str, FailoverNode]
    ifaces: dict[str, Iface]
    client: Node
    client_iface: Iface

    def serving(self, who: str, timeout: float) -> float:
        return wait_serving(self.topology, self.client, self.vip, who, timeout)

    def cut(self, name: str) -> None:
        self.topology.link_down(self.ifaces[name])

    def restore(self, name: str) -> None:
        self.topology.link_up(self.ifaces[name])

    def describe(self) -> str:
        return describe(self.nodes.values())


def web_cluster(
    topology: Topology,
    workdir: Path,
    names: Sequence[str],
    *,
    vip: str,
    script: str = "apache2",
    auto_failback: str = "on",
    extra: Sequence[str] = (),
    before_start: Callable[[Lan], object] | None = None,
    toml: str | None = None,
    edit_toml: Callable[[str], str] | None = None,
) -> WebCluster:
    """Nodes .11, .12, … on 198.51.100.0/24, the client .50; haresources
    ``<first node> <vip> <script>`` with the web script in resource.d; started.
    *extra* ha.cf lines are added; *before_start* gets the LAN before the daemons start;
    with *toml* the daemons run from the converted TOML with that text appended, and
    changed by *edit_toml* (e.g. the monitor keys of the group uncommented)."""
    lan = topology.add_lan("lan0", "198.51.100.0/24")
    config = ha_cf(names, ["bcast eth0"], auto_failback=auto_failback, extra=extra)
    nodes: dict[str, FailoverNode] = {}
    ifaces: dict[str, Iface] = {}
    for i, name in enumerate(names):
        ns = topology.add_node(name)
        ifaces[name] = topology.connect(ns, lan, "eth0", f"198.51.100.{11 + i}")
        nodes[name] = FailoverNode(
            topology, ns, workdir, name=name, ha_cf=config,
            haresources=f"{names[0]} {vip} {script}\n",
            scripts={script: web_script(workdir, name)},
        )  # fmt: skip
    client = topology.add_node("client")
    client_iface = topology.connect(client, lan, "eth0", "198.51.100.50")
    if before_start is not None:
        before_start(lan)
    if toml is not None:
        for node in nodes.values():
            node.use_toml(toml, edit_toml)
    start_all(nodes.values())
    return WebCluster(topology, vip, nodes, ifaces, client, client_iface)
