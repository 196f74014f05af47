"""The service-crash scenario of issue 11, shared by bench/failover and bench/compare.

The web server behind the floating IP is killed (SIGKILL) on the holder, and the client
measures how long it gets no answer until somebody serves it again: pulse restarts the
server in place when its monitor finds it gone, keepalived moves the address to the
backup when its ``track_script`` fails, Heartbeat 3.0.6 does neither (haresources has no
monitoring), so its wait is bounded and reported as "not served again within N s".

Every daemon runs the same web server and the same check. :class:`WebServer` installs,
in a node's directory, the demo's web script (:data:`pulse_lab.demo.WEB_SCRIPT`, which
keeps the server's pid in ``demo-web.pid`` and prints "demo-web is running" for
``status``) behind a wrapper ``resource.d/demo-web`` that appends every call to
``calls.log`` with its wall-clock time: when a monitor asked for the status, when the
restart's ``stop`` and ``start`` began, and when ``start`` returned (the server
accepting connections). pulse runs the wrapper as its resource; keepalived's
``vrrp_script`` runs ``check-web``, which asks the wrapper for the status and fails when
the server is not running.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pulse.config.convert import MONITOR_HINT
from pulse_lab.bench import Tail
from pulse_lab.demo import WEB_SCRIPT
from pulse_lab.netns import Node, Topology
from pulse_lab.probe import Outage, Sample, outage, serving

WEB = "demo-web"
BOUND = 15.0  # seconds a trial waits for the service to be served again
MONITOR_INTERVAL = 1.0  # pulse's monitor and keepalived's vrrp_script, the same
MONITOR_TIMEOUT = 5.0
DOWN_WITHIN = 3.0  # a request sent after the kill fails within this, or the kill missed
SETTLE = 0.3  # the probe's samples around the return land within this
POLL = 0.05


@dataclass(frozen=True, slots=True)
class Call:
    """One call of the web script: *what* ("status", "stop", "start", "start-done")."""

    what: str
    t: float  # monotonic


@dataclass(frozen=True, slots=True)
class WebServer:
    """The web server of one node (under *dir*, answering *name*)."""

    dir: Path
    name: str

    @property
    def script(self) -> Path:
        return self.dir / "resource.d" / WEB

    @property
    def check(self) -> Path:
        return self.dir / "check-web"

    @property
    def pidfile(self) -> Path:
        return self.dir / f"{WEB}.pid"

    @property
    def calls_log(self) -> Path:
        return self.dir / "calls.log"

    def install(self) -> None:
        docroot = self.dir / "www"
        docroot.mkdir(parents=True, exist_ok=True)
        (docroot / "index.html").write_text(self.name + "\n")
        real = self.dir / f"{WEB}.real"
        real.write_text(WEB_SCRIPT.format(python=sys.executable, docroot=docroot, workdir=self.dir))
        log = self.calls_log
        wrapper = (
            "#!/bin/sh\n"
            f"# {WEB}: {real.name} with every call and its time appended to {log.name}.\n"
            f'echo "$1 $(date +%s.%N)" >> {log}\n'
            f'{real} "$@"; rc=$?\n'
            f'echo "$1-done $(date +%s.%N)" >> {log}\n'
            "exit $rc\n"
        )
        check = f"#!/bin/sh\n{self.script} status | grep -q 'is running'\n"
        self.script.parent.mkdir(parents=True, exist_ok=True)
        for path, text in ((real, None), (self.script, wrapper), (self.check, check)):
            if text is not None:
                path.write_text(text)
            path.chmod(0o755)

    def start(self, topology: Topology, node: Node) -> None:
        """Start it in *node* (the script returns once the server accepts connections)."""
        done = topology.run(node, [str(self.script), "start"], timeout=15)
        if done.returncode != 0:
            raise RuntimeError(f"{self.script} start failed in {node.name}")

    def kill(self) -> float:
        """SIGKILL the server behind its manager's back; returns when (monotonic)."""
        pid = int(self.pidfile.read_text())
        at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        return at

    def calls(self, after: float) -> list[Call]:
        """The script's calls that began after *after* (monotonic), oldest first."""
        return calls_after(self.calls_log, after)


def calls_after(path: Path, after: float) -> list[Call]:
    """:meth:`WebServer.calls`: the wall-clock times of *path* in monotonic time."""
    offset = time.time() - time.monotonic()
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        what, _, stamp = line.partition(" ")
        try:
            t = float(stamp) - offset
        except ValueError:
            continue  # a line being written
        if t > after:
            out.append(Call(what, t))
    return out


def script_parts(calls: list[Call], killed: float, end: float) -> dict[str, float]:
    """Where a crash's outage went, from the web script's calls between the kill and
    the first answer after it (*end*): the wait for the next check (``status``), the
    check's verdict to the restart's ``stop``, ``stop`` to ``start``, ``start`` to the
    first answer. Only the parts whose calls happened are there (keepalived restarts
    nothing: it has the first one only)."""
    times: dict[str, float] = {}
    for c in calls:
        if killed < c.t <= end:
            times.setdefault(c.what, c.t)
    marks = [("kill", killed), *((w, times.get(w)) for w in ("status", "stop", "start"))]
    names = {"status": "next_check", "stop": "stop", "start": "start"}
    parts: dict[str, float] = {}
    last_name, last_t = "kill", killed
    for what, t in marks[1:]:
        if t is None:
            continue
        parts[f"{last_name}_to_{names[what]}"] = t - last_t
        last_name, last_t = names[what], t
    if last_name != "kill" and last_name != "next_check":
        parts[f"{last_name}_to_first_answer"] = end - last_t
    return parts


def monitored(toml: str, interval: float = MONITOR_INTERVAL) -> str:
    """``pulse convert``'s TOML with the group monitored every *interval* seconds,
    restarted in place on failure (``on_fail = "restart"``, the default) and moved
    after 3 failures in 10 minutes; failures older than that are forgotten."""
    for hint in MONITOR_HINT:
        if hint not in toml:
            raise ValueError(f"pulse convert no longer writes {hint!r}")
    monitor = f'monitor = {{ interval = "{interval:g}s", timeout = "{MONITOR_TIMEOUT:g}s" }}'
    toml = toml.replace(MONITOR_HINT[0], monitor)
    return toml.replace(MONITOR_HINT[3], 'failure_timeout = "10m"')


class KillMissed(RuntimeError):
    """No request sent after the kill failed: the kill did not stop the service."""


def down_then_served(
    probe: Tail[Sample], killed: float, bound: float, check: Callable[[], None]
) -> Outage | None:
    """After a kill at *killed*: wait until a request sent after it fails, then until
    one sent after that failure succeeds, at most until *bound* seconds after the kill.
    The outage the client saw (the longest gap between successes), or None when nobody
    served again within *bound*. *check* is called every poll (the probe still runs)."""
    deadline = killed + bound
    failed: float | None = None
    while time.monotonic() < deadline:
        if failed is None:
            failed = next((s.t for s in probe.since(killed) if not s.ok), None)
            if failed is None and time.monotonic() > killed + DOWN_WITHIN:
                raise KillMissed(f"every request in the {DOWN_WITHIN:g}s after the kill succeeded")
        if failed is not None and serving(probe.since(failed), failed) is not None:
            time.sleep(SETTLE)
            return outage(probe.since(killed - 5.0), killed, time.monotonic())
        check()
        time.sleep(POLL)
    return None
