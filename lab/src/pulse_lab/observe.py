"""Watching a lab from the outside while faults hit it (bench/chaos, e2e tests).

:class:`HolderSampler` asks the kernel of every node's namespace, every 20 ms, whether
the floating IP is configured there (one rtnetlink address dump per namespace, through
sockets opened inside each namespace once, in one thread), and keeps the times at which
the set of holders changed. :class:`LogTail` follows the daemons' log files and stamps
every new line with ``time.monotonic`` when it was read (the log lines' own stamps have
one-second resolution), so a ``node calc: is dead`` lines up with the faults within
tens of milliseconds. The pure helpers (:func:`overlaps`, :func:`holders_between`)
turn a timeline into the figures a report needs.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pulse.resources.netlink import (
    RECV_SIZE,
    Exchange,
    address_dump_request,
    decode_address,
)

CLONE_NEWNET = 0x40000000
SAMPLE_INTERVAL = 0.02
TAIL_INTERVAL = 0.05

Timeline = Sequence[tuple[float, frozenset[str]]]


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netlink_socket_in(netns: str) -> socket.socket:
    """A NETLINK_ROUTE socket that belongs to network namespace *netns* (by name).

    The calling thread enters the namespace, opens the socket and comes back; the
    socket keeps answering for the namespace it was opened in."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            finally:
                _setns(home)
        finally:
            os.close(target)
    finally:
        os.close(home)
    sock.settimeout(1.0)
    return sock


def has_address(sock: socket.socket, address: ipaddress.IPv4Address, seq: int) -> bool:
    """Whether the namespace of *sock* has *address* on any interface (one dump)."""
    sock.send(address_dump_request(seq, socket.AF_INET))
    exchange = Exchange(seq)
    while not exchange.done:
        exchange.feed(sock.recv(RECV_SIZE))
    return any(decode_address(m).address == address for m in exchange.records)


class _Background:
    """A daemon thread running ``_run`` until :meth:`stop`; ``_stopping`` is its event."""

    def __init__(self, name: str) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def _stopped(self) -> None:
        """After the thread has ended (close what it used)."""

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._stopped()


class HolderSampler(_Background):
    """Which namespaces hold *address*, sampled every *interval* seconds in a thread.

    ``timeline`` is a list of ``(time, holders)``, one entry per change (the first
    sample included); ``samples`` counts the rounds and ``gaps`` the rounds that came
    more than 5 intervals late (the sampler itself starved)."""

    def __init__(
        self, namespaces: Mapping[str, str], address: str, interval: float = SAMPLE_INTERVAL
    ) -> None:
        super().__init__("holders")
        self.address = ipaddress.IPv4Address(address)
        self.interval = interval
        self._sockets = {name: netlink_socket_in(ns) for name, ns in namespaces.items()}
        self.timeline: list[tuple[float, frozenset[str]]] = []
        self.samples = 0
        self.gaps = 0
        self.errors = 0
        self._lock = threading.Lock()

    def _stopped(self) -> None:
        for sock in self._sockets.values():
            sock.close()

    def _run(self) -> None:
        seq = 0
        last = time.monotonic()
        while not self._stopping.is_set():
            t = time.monotonic()
            if t - last > 5 * self.interval and self.samples:
                self.gaps += 1
            last = t
            held = set()
            for name, sock in self._sockets.items():
                seq += 1
                try:
                    if has_address(sock, self.address, seq):
                        held.add(name)
                except OSError:
                    self.errors += 1
            holders = frozenset(held)
            with self._lock:
                self.samples += 1
                if not self.timeline or self.timeline[-1][1] != holders:
                    self.timeline.append((t, holders))
            self._stopping.wait(max(0.0, t + self.interval - time.monotonic()))

    def snapshot(self) -> list[tuple[float, frozenset[str]]]:
        with self._lock:
            return list(self.timeline)

    def now(self) -> frozenset[str]:
        with self._lock:
            return self.timeline[-1][1] if self.timeline else frozenset()


def holders_at(timeline: Timeline, t: float) -> frozenset[str]:
    """The holders at time *t* (the last change at or before it)."""
    i = bisect.bisect_right([x[0] for x in timeline], t)
    return timeline[i - 1][1] if i else frozenset()


def overlaps(timeline: Timeline, start: float, end: float) -> list[tuple[float, float]]:
    """The intervals within [start, end] during which two or more nodes held the address."""
    found: list[tuple[float, float]] = []
    points = [(max(t, start), h) for t, h in timeline if t < end]
    if not points:
        return found
    # what held at *start* is the last change at or before it
    first = holders_at(timeline, start)
    points = [(start, first)] + [(t, h) for t, h in points if t > start]
    for i, (t, held) in enumerate(points):
        until = points[i + 1][0] if i + 1 < len(points) else end
        if len(held) >= 2 and until > t:
            if found and abs(found[-1][1] - t) < 1e-9:
                found[-1] = (found[-1][0], until)
            else:
                found.append((t, until))
    return found


def holders_between(timeline: Timeline, start: float, end: float) -> set[str]:
    """Every node that held the address at some time within [start, end]."""
    seen = set(holders_at(timeline, start))
    for t, held in timeline:
        if start < t <= end:
            seen |= held
    return seen


@dataclass(frozen=True, slots=True)
class LogLine:
    t: float  # time.monotonic() when the line was read (within TAIL_INTERVAL of written)
    source: str  # the daemon and node, e.g. "pulse/n1"
    text: str


class LogTail(_Background):
    """Follows log files in a thread; ``lines`` holds every new line, stamped on arrival."""

    def __init__(self, files: Mapping[str, Path], interval: float = TAIL_INTERVAL) -> None:
        super().__init__("logtail")
        self.files = dict(files)
        self.interval = interval
        self._offsets = {name: _size(path) for name, path in self.files.items()}
        self._partial: dict[str, bytes] = {}
        self.lines: list[LogLine] = []
        self._lock = threading.Lock()

    def _stopped(self) -> None:
        self.poll()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        now = time.monotonic()
        for name, path in self.files.items():
            data = b""
            with contextlib.suppress(OSError), open(path, "rb") as f:
                f.seek(self._offsets.get(name, 0))
                data = f.read()
            if not data:
                continue
            self._offsets[name] = self._offsets.get(name, 0) + len(data)
            whole, _, rest = (self._partial.get(name, b"") + data).rpartition(b"\n")
            self._partial[name] = rest
            if whole:
                new = [
                    LogLine(now, name, line) for line in whole.decode(errors="replace").splitlines()
                ]
                with self._lock:
                    self.lines.extend(new)

    def since(self, t: float) -> list[LogLine]:
        with self._lock:
            return [line for line in self.lines if line.t >= t]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
