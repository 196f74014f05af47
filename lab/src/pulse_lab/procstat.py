"""CPU time and resident memory of a daemon's processes, from /proc (bench/compare).

A daemon is a set of processes (Heartbeat forks a master, readers, writers and
children; keepalived a parent and a VRRP child; pulse is one process). :func:`measure`
samples them every second for a window: CPU is the growth of ``utime + stime`` of each
process seen, RSS the sum of ``VmRSS`` at each sample.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int  # utime + stime


def parse_stat(text: str) -> ProcStat:
    """One /proc/PID/stat line. The command name (field 2) may contain spaces and
    parentheses, so fields are counted after its last ``)``."""
    head, _, tail = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = tail.split()
    # tail starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    return ProcStat(pid=pid, ppid=int(fields[1]), ticks=int(fields[11]) + int(fields[12]))


def parse_rss_kib(status: str) -> int:
    """VmRSS of a /proc/PID/status text in KiB (0 for a kernel thread or a zombie)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def read_stat(pid: int) -> ProcStat | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def running(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rpartition(")")[2].split()[:1] != ["Z"]


def read_rss_kib(pid: int) -> int:
    try:
        return parse_rss_kib(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0


def children_map(stats: Iterable[ProcStat]) -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for s in stats:
        tree.setdefault(s.ppid, []).append(s.pid)
    return tree


def descendants_of(root: int, tree: dict[int, list[int]]) -> list[int]:
    """Every process below *root* in a parent -> children map, breadth first."""
    found: list[int] = []
    todo = [root]
    seen = {root}
    while todo:
        for child in tree.get(todo.pop(0), []):
            if child not in seen:
                seen.add(child)
                found.append(child)
                todo.append(child)
    return found


def descendants(root: int) -> list[int]:
    """The live descendants of process *root*."""
    stats = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            s = read_stat(int(entry.name))
            if s is not None:
                stats.append(s)
    return descendants_of(root, children_map(stats))


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """What a daemon's processes used over a window."""

    seconds: float
    cpu_seconds: float
    rss_kib_mean: float
    rss_kib_max: int
    processes: int  # the most seen at one sample

    @property
    def cpu_seconds_per_minute(self) -> float:
        return self.cpu_seconds / self.seconds * 60 if self.seconds > 0 else 0.0

    @property
    def core_percent(self) -> float:
        return self.cpu_seconds / self.seconds * 100 if self.seconds > 0 else 0.0


def account(samples: list[tuple[float, dict[int, tuple[int, int]]]]) -> Cost:
    """Pure: a Cost from samples ``(time, {pid: (ticks, rss_kib)})``. Each process's
    CPU is its last ticks minus its first (a process that appeared mid-window counts
    from its first sample; one that left, up to its last)."""
    if len(samples) < 2:
        raise ValueError("need at least two samples")
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for _, procs in samples:
        for pid, (ticks, _) in procs.items():
            first.setdefault(pid, ticks)
            last[pid] = ticks
    cpu = sum(max(0, last[p] - first[p]) for p in first) / CLOCK_TICKS
    rss = [sum(r for _, r in procs.values()) for _, procs in samples]
    return Cost(
        seconds=samples[-1][0] - samples[0][0],
        cpu_seconds=cpu,
        rss_kib_mean=sum(rss) / len(rss),
        rss_kib_max=max(rss),
        processes=max(len(procs) for _, procs in samples),
    )


def snapshot(pids: Iterable[int]) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for pid in pids:
        s = read_stat(pid)
        if s is not None:
            out[pid] = (s.ticks, read_rss_kib(pid))
    return out


def measure(pids: Callable[[], Iterable[int]], seconds: float, interval: float = 1.0) -> Cost:
    """Sample the processes *pids()* names every *interval* for *seconds*."""
    return measure_many({"": pids}, seconds, interval)[""]


def measure_many(
    groups: Mapping[str, Callable[[], Iterable[int]]], seconds: float, interval: float = 1.0
) -> dict[str, Cost]:
    """:func:`measure` for several daemons over the same window."""
    samples: dict[str, list[tuple[float, dict[int, tuple[int, int]]]]] = {g: [] for g in groups}
    deadline = time.monotonic() + seconds
    while True:
        now = time.monotonic()
        for name, pids in groups.items():
            samples[name].append((now, snapshot(pids())))
        if now >= deadline:
            break
        time.sleep(min(interval, max(0.0, deadline - now)))
    return {name: account(s) for name, s in samples.items()}
