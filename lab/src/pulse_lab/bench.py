"""Pieces shared by the benchmarks in bench/ (failover, compare).

:class:`Tail` reads the JSON-lines files the lab's helpers append to (the probe's
samples, the watchers' events); :func:`summary` and :func:`machine` give the numbers and
the context every report carries; :func:`start_web`, :func:`start_watch` and
:func:`start_probe` start the helper processes of a benchmark in a node's namespace.
"""

from __future__ import annotations

import bisect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from pulse_lab.netns import Node, Topology

T = TypeVar("T")


class Tail(Generic[T]):
    """A JSON-lines file another process appends to, read incrementally, kept sorted."""

    def __init__(
        self, path: Path, parse: Callable[[list[str]], list[T]], key: Callable[[T], float]
    ) -> None:
        self.path = path
        self._parse = parse
        self._key = key
        self._offset = 0
        self._partial = b""
        self.items: list[T] = []
        self.keys: list[float] = []

    def update(self) -> list[T]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return self.items
        self._offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        if complete:
            new = self._parse(complete.decode(errors="replace").splitlines())
            if new:
                self.items.extend(new)
                self.items.sort(key=self._key)
                self.keys = [self._key(x) for x in self.items]
        return self.items

    def since(self, t: float) -> list[T]:
        """Items with a time at or after *t* (after an update)."""
        self.update()
        return self.items[bisect.bisect_left(self.keys, t) :]


def summary(values: Sequence[float]) -> dict[str, float] | None:
    """min, median and max of *values*, rounded to 0.1 ms (None when there are none)."""
    if not values:
        return None
    return {
        "min": round(min(values), 4),
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
    }


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on: CPUs, CPU model, kernel, Python, load."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.025)


def mac_of(topology: Topology, node: Node, ifname: str = "eth0") -> str:
    out = topology.run(node, ["ip", "-j", "link", "show", "dev", ifname]).stdout
    return str(json.loads(out)[0]["address"]).lower()


def start_web(topology: Topology, node: Node, docroot: Path, answer: str) -> None:
    """A web server on 0.0.0.0:80 in *node* answering *answer*; returns once it listens."""
    docroot.mkdir(parents=True, exist_ok=True)
    (docroot / "index.html").write_text(answer + "\n")
    argv = [sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "80"]
    argv += ["--directory", str(docroot)]
    topology.popen(node, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check = (
        "import socket, time\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', 80), 0.1).close(); break\n"
        "    except OSError: time.sleep(0.025)\n"
        "else: raise SystemExit(1)\n"
    )
    topology.run(node, [sys.executable, "-c", check], timeout=15)


def start_watch(
    topology: Topology, node: Node, out: Path, duration: float, udp_port: int | None = None
) -> None:
    """``pulse_lab.watch`` in *node*, writing to *out*; returns once it is ready."""
    ready = out.with_suffix(".ready")
    argv = [sys.executable, "-m", "pulse_lab.watch", "--out", str(out)]
    argv += ["--duration", str(duration), "--ready", str(ready)]
    if udp_port is not None:
        argv += ["--udp-port", str(udp_port)]
    topology.popen(node, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(ready.exists, 15, f"the event watcher in {node.name}")


def start_probe(
    topology: Topology,
    node: Node,
    url: str,
    out: Path,
    *,
    interval: float,
    fresh: float,
    duration: float,
) -> subprocess.Popen[Any]:
    """``pulse_lab.probe`` in *node*: a request to *url* every *interval*, to *out*;
    its stderr goes to *out* with the suffix ``.err``."""
    argv = [sys.executable, "-m", "pulse_lab.probe", "--url", url]
    argv += ["--interval", str(interval), "--fresh", str(fresh)]
    argv += ["--duration", str(duration), "--out", str(out)]
    with open(out.with_suffix(".err"), "wb") as errors:
        return topology.popen(node, argv, stdout=subprocess.DEVNULL, stderr=errors)
