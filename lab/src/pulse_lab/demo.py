"""``pulse demo``: the prime/calc web cluster, rebuilt in network namespaces on this machine.

Two nodes (prime, calc) — or three (server1..3) with ``--nodes 3`` — run real pulse
daemons with a Heartbeat config: ``bcast eth0``, a floating IP and a web server per
node that answers with its own name (the Apache pair of
tests/data/legacy/000-prime-calc-apache). A client namespace asks the floating IP for a
page every 10 ms. The demo cuts the serving node off
hard, brings it back, and switches over gracefully with ``pulsectl standby`` and
``takeover``, printing who serves and how long the client saw no answer at each step.

Everything lives in namespaces it creates (198.51.100.0/24 only) and is removed at
the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pulse_lab.cluster import PulseNode
from pulse_lab.netns import Iface, Topology, netns_available
from pulse_lab.probe import Sample, outage, read_samples, serving

SUBNET = "198.51.100.0/24"
VIP = "198.51.100.100"
CLIENT = "198.51.100.50"
KEEPALIVE = "250ms"
DEADTIME = "1"
STEP_TIMEOUT = 20.0
SETTLE = 1.0  # seconds between steps, so each outage stands on its own

WEB_SCRIPT = """#!/bin/sh
# demo-web: a stand-in for /etc/init.d/apache2, run by pulse as a resource.d script.
# It serves {docroot} (an index.html holding this node's name) on port 80.
pidfile={workdir}/demo-web.pid
running() {{ [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }}
case "$1" in
start)
    running && exit 0
    # The subshell stays the server's parent and reaps it the moment it dies, so a
    # killed server is gone at once for `status`, whatever the machine's init does
    # with orphans (a zombie answers kill -0).
    ( {python} -m http.server --bind 0.0.0.0 80 --directory {docroot} &
      echo $! > "$pidfile"; wait ) >/dev/null 2>&1 &
    i=0
    while [ $i -lt 100 ]; do  # wait (at most 5 s) until it accepts connections
        {python} -c 'import socket; socket.create_connection(("127.0.0.1", 80), 0.05)' \\
            2>/dev/null && exit 0
        i=$((i + 1)); sleep 0.05
    done
    exit 1 ;;
stop)
    running && kill "$(cat "$pidfile")"
    rm -f "$pidfile"; exit 0 ;;
status)
    if running; then echo "demo-web is running"; else echo "demo-web is stopped"; fi ;;
*)
    echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
"""


@dataclass
class Step:
    at: float
    text: str
    kind: str = ""  # the outage label, when the step moves the service
    expect: str = ""  # who should serve afterwards
    seconds: float | None = None
    served_at: float | None = None


@dataclass
class Demo:
    topology: Topology
    workdir: Path
    names: list[str]
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    nodes: dict[str, PulseNode] = field(default_factory=dict)
    ifaces: dict[str, Iface] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    probe_file: Path | None = None
    t0: float = 0.0

    # ------------------------------------------------------------------ set-up

    def build(self) -> None:
        lan = self.topology.add_lan("lan0", SUBNET)
        ha_cf = "\n".join(
            [
                "# written by pulse demo",
                f"keepalive {KEEPALIVE}",
                f"deadtime {DEADTIME}",
                "warntime 500ms",
                "initdead 3",
                "udpport 694",
                "bcast eth0",
                "auto_failback on",
                *(f"node {n}" for n in self.names),
            ]
        )
        haresources = f"{self.names[0]} {VIP} demo-web\n"
        for i, name in enumerate(self.names):
            ns = self.topology.add_node(name)
            self.ifaces[name] = self.topology.connect(ns, lan, "eth0", f"198.51.100.{11 + i}")
            docroot = self.workdir / name / "www"
            docroot.mkdir(parents=True)
            (docroot / "index.html").write_text(name + "\n")
            script = WEB_SCRIPT.format(
                python=sys.executable, docroot=docroot, workdir=self.workdir / name
            )
            self.nodes[name] = PulseNode(
                self.topology,
                ns,
                self.workdir,
                name=name,
                ha_cf=ha_cf + "\n",
                authkeys="auth 1\n1 sha1 pulse-demo-secret\n",
                haresources=haresources,
                scripts={"demo-web": script},
            )
        client = self.topology.add_node("client")
        self.topology.connect(client, lan, "eth0", CLIENT)
        self.client = client

    def start(self, duration: float) -> None:
        for node in self.nodes.values():
            node.start()
        self.probe_file = self.workdir / "probe.jsonl"
        argv = [
            sys.executable, "-m", "pulse_lab.probe", "--url", f"http://{VIP}/",
            "--interval", "0.01", "--duration", str(duration), "--out", str(self.probe_file),
        ]  # fmt: skip
        self.topology.popen(self.client, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.t0 = time.monotonic()

    # ------------------------------------------------------------------ observing

    def samples(self) -> list[Sample]:
        assert self.probe_file is not None
        try:
            with open(self.probe_file) as f:
                return read_samples(f)
        except FileNotFoundError:
            return []

    def wait_serving(self, who: str, since: float, timeout: float = STEP_TIMEOUT) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if serving(self.samples(), since) == who:
                return time.monotonic()
            time.sleep(0.05)
        raise TimeoutError(f"{who} did not start serving {VIP} within {timeout:.0f}s")

    def say(self, at: float, text: str) -> None:
        print(f"  t={at - self.t0:7.2f}s  {text}", file=self.out, flush=True)

    # ------------------------------------------------------------------ steps

    def step(self, text: str, kind: str, expect: str, action: Callable[[], None]) -> None:
        time.sleep(SETTLE)
        at = time.monotonic()
        self.say(at, text)
        action()
        self.wait_serving(expect, at)
        time.sleep(0.3)  # let the probe's samples around the switch land
        gap = outage(self.samples(), at, time.monotonic())
        seconds = gap.seconds if gap is not None else 0.0
        served = gap.end if gap is not None else at
        self.steps.append(Step(at, text, kind, expect, seconds, served))
        self.say(served, f"{expect} serves {VIP}   (client saw no answer for {seconds:.3f}s)")

    def cut(self, name: str) -> Callable[[], None]:
        return lambda: self.topology.link_down(self.ifaces[name])

    def restore(self, name: str) -> Callable[[], None]:
        return lambda: self.topology.link_up(self.ifaces[name])

    def ctl(self, name: str, verb: str) -> Callable[[], None]:
        def run() -> None:
            reply = self.nodes[name].ctl(verb, "all")
            if not reply.ok:
                raise RuntimeError(f"pulsectl {verb} on {name}: {reply.error}")

        return run

    def scenario(self) -> None:
        first = self.names[0]
        at = self.wait_serving(first, self.t0, timeout=30)
        self.say(at, f"cluster up: {first} holds {VIP} and serves it")
        time.sleep(max(0.0, 5.5 - (time.monotonic() - self.t0)))  # past the start-up grace
        if len(self.names) == 2:
            prime, calc = self.names
            self.step(f"cutting {prime} off hard (ip link set eth0 down)", "hard failure",
                      calc, self.cut(prime))  # fmt: skip
            self.step(f"{prime} is back on the LAN (auto_failback on)", "failback",
                      prime, self.restore(prime))  # fmt: skip
            self.step(f"pulsectl standby on {prime}", "graceful standby", calc,
                      self.ctl(prime, "standby"))  # fmt: skip
            self.step(f"pulsectl takeover on {prime}", "takeover", prime,
                      self.ctl(prime, "takeover"))  # fmt: skip
        else:
            s1, s2, s3 = self.names
            self.step(f"cutting {s1} off hard", "hard failure", s2, self.cut(s1))
            self.step(f"cutting {s2} off hard", "second failure", s3, self.cut(s2))
            self.step(f"{s2} is back", "failback to 2nd", s2, self.restore(s2))
            self.step(f"{s1} is back", "failback to 1st", s1, self.restore(s1))
            self.step(f"pulsectl standby on {s1}", "graceful standby", s2,
                      self.ctl(s1, "standby"))  # fmt: skip

    def summary(self) -> None:
        print("\nSummary (outage = longest gap between answers seen by the client):",
              file=self.out)  # fmt: skip
        for s in self.steps:
            print(f"  {s.kind:<20} {s.seconds or 0.0:7.3f} s   -> {s.expect}", file=self.out)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pulse demo", description="run a demo cluster in network namespaces (root)"
    )
    p.add_argument("--nodes", type=int, default=2, choices=(2, 3))
    p.add_argument("--keep-going", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str]) -> int:
    """``pulse demo ARGS``: registered in the ``pulse.commands`` entry-point group
    (lab/pyproject.toml), which ``pulse`` runs its extra subcommands from."""
    ns = build_parser().parse_args(argv)
    reason = netns_available()
    if reason is not None:
        print(f"pulse demo: {reason} (run it as root)", file=sys.stderr)
        return 1
    names = ["prime", "calc"] if ns.nodes == 2 else ["server1", "server2", "server3"]
    workdir = Path(tempfile.mkdtemp(prefix="pulse-demo-"))
    os.chmod(workdir, 0o700)
    print(
        f"pulse demo: {len(names)} nodes ({', '.join(names)}) in network namespaces, "
        f"keepalive {KEEPALIVE}, deadtime {DEADTIME}s\n"
        f"  LAN {SUBNET}: "
        + ", ".join(f"{n} .{11 + i}" for i, n in enumerate(names))
        + f", client .50; floating IP {VIP}\n"
        f"  haresources: {names[0]} {VIP} demo-web   (a web server answering with its name)\n"
        f"  the client asks http://{VIP}/ for a page every 10 ms\n",
        flush=True,
    )
    status = 0
    topology = Topology(name_prefix="pd")
    try:
        demo = Demo(topology, workdir, names)
        demo.build()
        demo.start(duration=120)
        demo.scenario()
        demo.summary()
        demo.stop()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        status = 130
    except (TimeoutError, RuntimeError, OSError) as exc:
        print(f"\npulse demo failed: {exc}", file=sys.stderr)
        print(f"  node logs are in {workdir}", file=sys.stderr)
        status = 1
    finally:
        topology.close()
    if status == 0:
        shutil.rmtree(workdir, ignore_errors=True)
        print("\ncleaned up: every namespace and process of the demo is gone.")
    return status
