"""Real pulse daemons in network namespaces (the demo, the benchmarks, the tests).

A :class:`PulseNode` writes a Heartbeat-style config directory (ha.cf, authkeys
0600, haresources, resource.d scripts), runs ``pulse run`` inside its namespace as a
tracked process of the :class:`~pulse_lab.netns.Topology`, and reads its state over
the control socket, as ``pulsectl`` does. Every wait is bounded; the topology kills
the daemons when it closes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pulse.cli.ctl import NotRunning, call
from pulse.control.protocol import Reply, Request
from pulse.respawn import NEVER_REBOOT_ENV
from pulse_lab.netns import Node, Topology

PULSE = [sys.executable, "-m", "pulse"]


def ha_cf(
    nodes: Sequence[str],
    media: Sequence[str],
    *,
    keepalive: str = "200ms",
    deadtime: str = "1",
    warntime: str = "600ms",
    initdead: str = "2",
    auto_failback: str = "on",
    extra: Sequence[str] = (),
) -> str:
    """An ha.cf with short timers; *extra* lines go before the media (``baud``, ...)."""
    lines = [
        f"keepalive {keepalive}",
        f"deadtime {deadtime}",
        f"warntime {warntime}",
        f"initdead {initdead}",
        "udpport 694",
        *extra,
        *media,
        f"auto_failback {auto_failback}",
        *(f"node {n}" for n in nodes),
    ]
    return "\n".join(lines) + "\n"


class PulseNode:
    def __init__(
        self,
        topology: Topology,
        node: Node,
        workdir: Path,
        *,
        name: str,
        ha_cf: str,
        authkeys: str = "auth 1\n1 sha1 pulse-e2e-secret\n",
        haresources: str = "",
        scripts: Mapping[str, str] | None = None,
    ) -> None:
        self.topology = topology
        self.node = node
        self.name = name
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "ha.cf").write_text(ha_cf)
        (self.dir / "authkeys").write_text(authkeys)
        os.chmod(self.dir / "authkeys", 0o600)
        (self.dir / "haresources").write_text(haresources)
        if scripts:
            (self.dir / "resource.d").mkdir(exist_ok=True)
            for script, text in scripts.items():
                path = self.dir / "resource.d" / script
                path.write_text(text)
                path.chmod(0o755)
        self.socket = str(self.dir / "control.sock")
        self.logfile = self.dir / "pulse.log"
        self.proc: subprocess.Popen[Any] | None = None
        self.config_path: Path = self.dir  # the ha.d directory, or a TOML file (use_toml)

    def use_toml(self, extra: str = "", edit: Callable[[str], str] | None = None) -> None:
        """Run from ``pulse convert``'s TOML of this node's ha.d, with *extra* appended
        (tables only TOML has, such as ``[[notify]]``) and then changed by *edit*."""
        converted = self.topology.run(
            self.node, [*PULSE, "convert", "-c", str(self.dir), "--node", self.name]
        ).stdout
        path = self.dir / "pulse.toml"
        text = converted + "\n" + extra
        path.write_text(edit(text) if edit is not None else text)
        path.chmod(0o600)
        self.config_path = path

    def start(self) -> None:
        argv = [
            *PULSE, "run", "-c", str(self.config_path), "--node", self.name,
            "--control-socket", self.socket, "--state-dir", str(self.dir / "state"),
        ]  # fmt: skip
        # A daemon killed with SIGKILL leaves its socket file behind: waiting for the
        # socket must wait for the new daemon's.
        Path(self.socket).unlink(missing_ok=True)
        out = open(self.logfile, "ab")  # noqa: SIM115 - owned by the process
        env = {**os.environ, NEVER_REBOOT_ENV: "1"}  # a lab's failfast never reboots the host
        self.proc = self.topology.popen(
            self.node, argv, stdout=out, stderr=subprocess.STDOUT, env=env
        )
        out.close()
        wait_for(lambda: os.path.exists(self.socket), 10, f"{self.name}'s control socket")

    def stop(self) -> None:
        if self.proc is not None:
            self.topology.terminate(self.proc, grace=10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def ctl(self, command: str, what: str | None = None) -> Reply:
        """A pulsectl request (status, standby, takeover) over the control socket."""
        args = {"what": what} if what is not None else {}
        try:
            return call(self.socket, Request(command, args), timeout=10)
        except NotRunning as exc:
            raise RuntimeError(f"{self.name} is not running: {exc}") from exc

    def status(self) -> dict[str, Any]:
        reply = self.ctl("status")
        if not reply.ok:
            raise RuntimeError(f"status on {self.name}: {reply.error}")
        result: dict[str, Any] = reply.result
        return result

    def holder(self, group: str) -> str | None:
        """Who this node believes holds *group*."""
        for g in self.status()["resources"]["groups"]:
            if g["key"] == group:
                return None if g["holder"] is None else str(g["holder"])
        raise KeyError(group)

    def node_status(self, peer: str) -> str:
        for n in self.status()["cluster"]["nodes"]:
            if n["name"] == peer:
                return str(n["status"])
        raise KeyError(peer)

    def link_status(self, peer: str, link: str) -> str | None:
        for n in self.status()["cluster"]["nodes"]:
            if n["name"] == peer:
                value = n["links"].get(link)
                return None if value is None else str(value)
        raise KeyError(peer)

    def wait_node(self, peer: str, status: str, timeout: float) -> float:
        """Poll until *peer* has *status*; returns the seconds it took."""
        return wait_for(lambda: self.node_status(peer) == status, timeout, f"{peer} {status}")

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 3.0) -> None:
        """Wait until *text* is in this node's log (written by a logging thread)."""
        wait_for(lambda: text in self.log(), timeout, f"{text!r} in {self.name}'s log")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll *predicate* every 20 ms for at most *timeout* seconds; returns the time taken."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except (RuntimeError, KeyError, OSError, json.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
