"""keepalived (VRRPv3) nodes in lab namespaces, for bench/compare.

Each :class:`KeepalivedNode` writes its own keepalived.conf (one ``vrrp_instance``,
VRRP version 3, unicast adverts to its peers, one virtual IP) and runs ``keepalived``
in the foreground inside its network namespace, VRRP subsystem only, with private pid
files, so nothing under /etc or /run of the host is used. The topology kills it when it
closes.

VRRP's failure detection is the *master down interval*: ``3 * advert_int + skew``,
``skew = (256 - priority) * advert_int / 256`` on the backup (RFC 5798 §6.1).
:func:`advert_for_detection` picks the advert interval (centiseconds, VRRPv3's unit)
whose master down interval is closest to a Heartbeat deadtime.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulse_lab.netns import Node, Topology

KEEPALIVED_BIN = "keepalived"
VRRP_MAX_ADVERT_CS = 4095  # VRRPv3's 12-bit Max Advertise Interval, centiseconds


def keepalived_missing() -> str | None:
    """Why keepalived cannot run here, or None."""
    if os.geteuid() != 0:
        return "not running as root"
    if shutil.which(KEEPALIVED_BIN) is None:
        return "keepalived is not installed (Debian package `keepalived`)"
    return None


def master_down_interval(advert_s: float, backup_priority: int) -> float:
    """Seconds a VRRPv3 backup of *backup_priority* waits without adverts (RFC 5798)."""
    skew = (256 - backup_priority) * advert_s / 256
    return 3 * advert_s + skew


def advert_for_detection(detection_s: float, backup_priority: int) -> float:
    """The advert interval, in whole centiseconds, whose master down interval on a backup
    of *backup_priority* is closest to *detection_s*."""
    if not 1 <= backup_priority <= 254:
        raise ValueError(f"a backup's priority is 1..254, not {backup_priority}")
    per_advert = master_down_interval(1.0, backup_priority)
    centis = max(1, min(VRRP_MAX_ADVERT_CS, round(detection_s / per_advert * 100)))
    return centis / 100


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackScript:
    """A ``vrrp_script`` the instance tracks: with no weight, a failed check puts the
    instance in FAULT (a master gives the address up), a passing one lets it back."""

    path: str
    name: str = "chk_service"
    interval_s: float = 1.0
    timeout_s: int = 5  # keepalived takes whole seconds here
    fall: int = 1  # failed checks in a row before FAULT
    rise: int = 1  # passing checks in a row before it leaves FAULT

    def render(self) -> list[str]:
        return [
            f"vrrp_script {self.name} {{",
            f'    script "{self.path}"',
            f"    interval {self.interval_s:g}",
            f"    timeout {self.timeout_s}",
            f"    fall {self.fall}",
            f"    rise {self.rise}",
            "}",
            "",
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class VrrpInstance:
    """What one node's keepalived.conf says."""

    name: str
    interface: str
    address: str
    peers: tuple[str, ...]
    vip: str  # with its prefix, "198.51.100.100/24"
    priority: int
    advert_s: float
    router_id: int = 51
    initial_master: bool = False
    preempt: bool = True
    track: TrackScript | None = None

    def render(self) -> str:
        peers = "".join(f"        {p}\n" for p in self.peers)
        lines = [
            "global_defs {",
            f"    router_id {self.name}",
            "    vrrp_version 3",
            "    script_user root",
            # keepalived refuses to run scripts without it; it checks that no one but
            # root can change the script or a directory above it.
            *(["    enable_script_security"] if self.track is not None else []),
            "}",
            "",
            *(self.track.render() if self.track is not None else []),
            "vrrp_instance pulse_bench {",
            f"    state {'MASTER' if self.initial_master else 'BACKUP'}",
            f"    interface {self.interface}",
            f"    virtual_router_id {self.router_id}",
            "    version 3",
            f"    priority {self.priority}",
            f"    advert_int {self.advert_s:.2f}",
            f"    unicast_src_ip {self.address}",
            "    unicast_peer {",
            peers.rstrip("\n"),
            "    }",
            "    virtual_ipaddress {",
            f"        {self.vip} dev {self.interface}",
            "    }",
        ]
        if self.track is not None:
            lines += ["    track_script {", f"        {self.track.name}", "    }"]
        if not self.preempt:
            lines.append("    nopreempt")
        lines.append("}")
        return "\n".join(lines) + "\n"


class KeepalivedNode:
    """One keepalived daemon (parent + VRRP child) in a topology node."""

    def __init__(
        self, topology: Topology, node: Node, workdir: Path, *, instance: VrrpInstance
    ) -> None:
        self.topology = topology
        self.node = node
        self.name = instance.name
        self.instance = instance
        self.dir = workdir / instance.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "keepalived.conf"
        self.conf.write_text(instance.render())
        self.logfile = self.dir / "keepalived.log"
        self.proc: subprocess.Popen[Any] | None = None

    def argv(self) -> list[str]:
        d = self.dir
        return [
            KEEPALIVED_BIN, "--dont-fork", "--log-console", "--log-detail", "--vrrp",
            "--no-syslog", "--use-file", str(self.conf), "--pid", str(d / "keepalived.pid"),
            "--vrrp_pid", str(d / "vrrp.pid"), "--checkers_pid", str(d / "checkers.pid"),
        ]  # fmt: skip

    def check_config(self) -> str | None:
        """keepalived's own verdict on the config file (None when it accepts it)."""
        done = subprocess.run(
            [KEEPALIVED_BIN, "--config-test", "--use-file", str(self.conf)],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if done.returncode != 0:
            return (done.stderr or done.stdout).strip() or f"exit {done.returncode}"
        return None

    def start(self) -> None:
        out = open(self.logfile, "ab")  # noqa: SIM115 - owned by the process
        self.proc = self.topology.popen(self.node, self.argv(), stdout=out, stderr=out)
        out.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, as ``systemctl stop``: a master sends a priority 0 advert first."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.topology.terminate(self.proc, grace=1.0)
        self.proc = None

    def pids(self) -> list[int]:
        """The keepalived parent and its children (the VRRP process)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        from pulse_lab.procstat import descendants

        return [self.proc.pid, *descendants(self.proc.pid)]

    def log(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.logfile.read_text(errors="replace")
        return ""


def unicast_peers(addresses: Sequence[str], mine: str) -> tuple[str, ...]:
    return tuple(a for a in addresses if a != mine)
