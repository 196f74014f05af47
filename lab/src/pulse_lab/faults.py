"""Faults injected into the daemons of a lab, each with its undo (bench/chaos, e2e tests).

A :class:`Faults` belongs to one :class:`~pulse_lab.netns.Topology`. Every method
starts one fault and returns a :class:`Fault` whose :meth:`~Fault.undo` ends it;
undoing twice does nothing. Whatever is still active when the topology closes (also
on Ctrl-C, SIGTERM or an error, see :meth:`Topology.on_close`) is undone first, so a
frozen daemon is thawed before it is killed and busy loops never outlive the lab::

    faults = Faults(topo)
    drop = faults.drop_from(n2, "198.51.100.11")   # n2 no longer hears n1
    time.sleep(1.0)
    drop.undo()

The faults, and what they are made of on this kernel (no netem, no dummy links):

================  =================================================================
one-way drop      a netdev ingress rule on the node's interface: packets from one
                  source to the cluster port are dropped before the stack sees them
loss N %          ``numgen random mod 100 < N drop`` on the cluster traffic, input,
                  output or both, inside the node's namespace
partition         the node drops everything from its peers and every cluster packet
                  it sends (broadcasts included), in both directions
link down         ``ip link set … down`` on the node's or the switch's side
freeze            SIGSTOP to every process given (a daemon's process group); SIGCONT
kill              SIGKILL through a caller's function; the undo restarts it
hung script       a flag file that makes the lab's resource script sleep
CPU starvation    busy loops at a higher priority, pinned with the victim's processes
                  to one CPU, each ending by itself after its time limit
================  =================================================================

Packet rules match only the cluster's traffic (``udp dport 694`` by default, or
``ip protocol vrrp`` for keepalived), not the client's requests: the client then
measures what the HA daemon does about the fault, not the lost packets themselves.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pulse_lab.netns import Iface, Node, Topology

CLUSTER_TRAFFIC = "udp dport 694"  # Heartbeat's and pulse's udpport
VRRP_TRAFFIC = "ip protocol vrrp"  # keepalived
MAX_FAULT_SECONDS = 600.0  # a busy loop ends by itself after at most this long
_tables = itertools.count(1)


class Fault:
    """One active fault; :meth:`undo` ends it (idempotent)."""

    def __init__(self, kind: str, what: str, undo: Callable[[], None]) -> None:
        self.kind = kind
        self.what = what
        self._undo: Callable[[], None] | None = undo
        self.started = time.monotonic()
        self.ended: float | None = None

    @property
    def active(self) -> bool:
        return self._undo is not None

    def undo(self) -> None:
        undo, self._undo = self._undo, None
        if undo is not None:
            self.ended = time.monotonic()
            undo()

    def __repr__(self) -> str:
        return f"<Fault {self.kind}: {self.what}{'' if self.active else ' (undone)'}>"


def _table_name() -> str:
    return f"pulse_fault{next(_tables)}"


def _signal_all(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _threads(pid: int) -> list[int]:
    """Every thread of *pid* (affinity is per thread)."""
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _pin(pids: Iterable[int], cpus: set[int]) -> dict[int, set[int]]:
    """Pin every thread of *pids* to *cpus*; returns what each had before."""
    before: dict[int, set[int]] = {}
    for pid in pids:
        for tid in _threads(pid):
            with contextlib.suppress(OSError):
                before[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cpus)
    return before


def _unpin(before: dict[int, set[int]]) -> None:
    for tid, cpus in before.items():
        with contextlib.suppress(OSError):  # gone meanwhile
            os.sched_setaffinity(tid, cpus)


def busy_loop_argv(seconds: float) -> list[str]:
    """A Python process spinning on one CPU for *seconds* (never longer), then exiting."""
    seconds = min(max(seconds, 0.0), MAX_FAULT_SECONDS)
    code = (
        f"import time\nend = time.monotonic() + {seconds:.3f}\nwhile time.monotonic() < end: pass\n"
    )
    return [sys.executable, "-c", code]


class Faults:
    """The faults of one topology; all of them are undone when it closes."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._active: list[Fault] = []
        topology.on_close(self.close)

    @property
    def active(self) -> list[Fault]:
        self._active = [f for f in self._active if f.active]
        return list(self._active)

    def _add(self, kind: str, what: str, undo: Callable[[], None]) -> Fault:
        fault = Fault(kind, what, undo)
        self._active.append(fault)
        return fault

    def close(self) -> None:
        """Undo every active fault, newest first; a failing undo does not stop the rest."""
        for fault in reversed(self.active):
            with contextlib.suppress(Exception):
                fault.undo()
        self._active.clear()

    # ----------------------------------------------------------------- packets

    def _table(self, kind: str, node: Node, what: str, family: str, chains: str) -> Fault:
        table = _table_name()
        self.topology.nft(node, f"table {family} {table} {{\n{chains}}}\n")

        def undo() -> None:
            self.topology.run(node, ["nft", "delete", "table", family, table], check=False)

        return self._add(kind, f"{node.name}: {what}", undo)

    def drop_from(
        self, iface: Iface, source: str, *, match: str = CLUSTER_TRAFFIC, port: bool = True
    ) -> Fault:
        """One-way: *iface*'s node no longer receives *source*'s cluster packets; its own
        still reach *source*. A netdev ingress rule, so nothing above the driver sees them."""
        rule = f"ip saddr {source} {match if port else ''} drop"
        chain = (
            f"  chain in {{ type filter hook ingress device {iface.ifname} priority -500; "
            f"{rule}; }}\n"
        )
        return self._table("oneway", iface.node, f"drops {source} at ingress", "netdev", chain)

    def loss(
        self, node: Node, percent: int, *, direction: str = "both", match: str = CLUSTER_TRAFFIC
    ) -> Fault:
        """Random loss of *percent* % of the cluster packets the node receives ("in"),
        sends ("out") or both, each packet drawn independently."""
        if not 0 < percent <= 100:
            raise ValueError(f"loss must be 1..100 %, not {percent}")
        if direction not in ("in", "out", "both"):
            raise ValueError(f"direction must be in, out or both, not {direction!r}")
        chance = "" if percent == 100 else f"numgen random mod 100 < {percent} "  # 0-99 only
        rule = f"{match} {chance}drop"
        chains = ""
        for name, hook in (("in", "input"), ("out", "output")):
            if direction in (name, "both"):
                chains += f"  chain {name} {{ type filter hook {hook} priority 0; {rule}; }}\n"
        return self._table("loss", node, f"{percent} % loss ({direction})", "inet", chains)

    def partition(self, node: Node, peers: Sequence[str], *, match: str = CLUSTER_TRAFFIC) -> Fault:
        """Symmetric: *node* hears nothing from *peers* and none of its cluster packets
        leave (broadcasts too, which a filter on the peers' addresses would miss)."""
        hosts = ", ".join(peers)
        chains = (
            f"  chain in {{ type filter hook input priority 0; ip saddr {{ {hosts} }} drop; }}\n"
            f"  chain out {{ type filter hook output priority 0; {match} drop; "
            f"ip daddr {{ {hosts} }} drop; }}\n"
        )
        return self._table("partition", node, f"cut off from {hosts}", "inet", chains)

    # ----------------------------------------------------------------- links

    def link_down(self, iface: Iface, *, side: str = "node") -> Fault:
        """The cable pulled on the node's side (its sends fail) or the switch's side."""
        self.topology.link_down(iface, side=side)

        def undo() -> None:
            self.topology.link_up(iface, side=side)

        return self._add("link", f"{iface.node.name}:{iface.ifname} down ({side} side)", undo)

    # ----------------------------------------------------------------- processes

    def freeze(self, name: str, pids: Callable[[], Sequence[int]]) -> Fault:
        """SIGSTOP every process *pids* lists now; the undo SIGCONTs the same ones."""
        stopped = list(pids())
        _signal_all(stopped, signal.SIGSTOP)
        return self._add(
            "freeze", f"{name} stopped ({len(stopped)} processes)",
            lambda: _signal_all(stopped, signal.SIGCONT),
        )  # fmt: skip

    def kill(self, name: str, kill: Callable[[], None], restart: Callable[[], None]) -> Fault:
        """A crash: *kill* (SIGKILL) now, *restart* as the undo."""
        kill()
        return self._add("kill", f"{name} killed", restart)

    def hang_scripts(self, flags: Sequence[Path]) -> Fault:
        """Create *flags*: the lab's resource script sleeps while its flag exists."""
        for flag in flags:
            flag.write_text("hang\n")

        def undo() -> None:
            for flag in flags:
                flag.unlink(missing_ok=True)

        return self._add("hung script", ", ".join(str(f) for f in flags), undo)

    def starve(
        self,
        node: Node,
        victims: Callable[[], Sequence[int]],
        *,
        seconds: float,
        hogs: int = 2,
        cpu: int | None = None,
        nice: int = -10,
    ) -> Fault:
        """CPU starvation: the victims' threads pinned to one CPU (the last by default)
        next to *hogs* busy loops at *nice*; the loops end after *seconds* by themselves,
        the undo ends them at once and gives the victims their CPUs back."""
        cpus = sorted(os.sched_getaffinity(0))
        chosen = cpus[-1] if cpu is None else cpu
        pinned = _pin(victims(), {chosen})
        argv = ["taskset", "-c", str(chosen), "nice", "-n", str(nice), *busy_loop_argv(seconds)]
        procs: list[subprocess.Popen[Any]] = [
            self.topology.popen(
                node,
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(hogs)
        ]

        def undo() -> None:
            for proc in procs:
                self.topology.terminate(proc, grace=1.0)
            _unpin(pinned)

        what = f"{node.name}: {len(pinned)} threads on CPU {chosen} with {hogs} busy loops"
        return self._add("starve", f"{what} at nice {nice}", undo)


def wait_all(faults: Iterable[Fault], seconds: float) -> None:
    """Keep *faults* for *seconds*, then undo them all (a bounded, simple schedule)."""
    time.sleep(max(0.0, min(seconds, MAX_FAULT_SECONDS)))
    for fault in faults:
        fault.undo()
