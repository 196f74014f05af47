"""Timestamped network events inside one namespace, for the benchmarks.

Run inside a node's or the client's namespace::

    python -m pulse_lab.watch --out events.jsonl --duration 600 [--udp-port 694]

It records, as JSON lines, when the kernel of that namespace

* gains or loses an IPv4 address (``addr+`` / ``addr-``, from netlink),
* changes a neighbour (ARP) entry (``neigh``, with the link-layer address), and,
  with ``--udp-port``,
* receives a cluster packet on that port (``udp``, with its ``t=`` and ``src=``
  fields; nothing is verified, this is an observer on the LAN).

Each line is ``{"t": time.monotonic(), "kind": ..., "what": ..., "detail": ...}``.
``time.monotonic`` is one clock for every namespace of the machine, so these events
line up with the probe's samples and the orchestrator's actions: that is how a
benchmark tells detection, the netlink change and the ARP update apart.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

MAX_PACKET = 65536
_CLASSIC_FIELD = re.compile(rb"(?:^|\n)(?:\(\d\))?(t|src)=([^\n]{0,64})")
_NETSTRING_FIELD = re.compile(rb"\d+:(?:\(\d\))?(t|src)=([^,]{0,64}),")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    t: float  # time.monotonic() when this process saw it
    kind: str  # "addr+", "addr-", "neigh", "neigh-", "udp"
    what: str  # the address (addr, neigh) or the packet's src (udp)
    detail: str = ""  # the link-layer address (neigh) or the message type (udp)


def packet_fields(data: bytes) -> tuple[str, str]:
    """``(t, src)`` of a Heartbeat packet in either encoding; empty when absent."""
    found: dict[bytes, bytes] = {}
    for pattern in (_CLASSIC_FIELD, _NETSTRING_FIELD):
        for match in pattern.finditer(data):
            found.setdefault(match.group(1), match.group(2))
    return (
        found.get(b"t", b"").decode("ascii", "replace"),
        found.get(b"src", b"").decode("ascii", "replace"),
    )


def event_to_json(event: Event) -> str:
    return json.dumps(
        {"t": event.t, "kind": event.kind, "what": event.what, "detail": event.detail}
    )


def read_events(lines: Iterable[str]) -> list[Event]:
    """Parse a watch file; a half-written last line is skipped. Sorted by time."""
    events: list[Event] = []
    for line in lines:
        try:
            d = json.loads(line)
            events.append(
                Event(
                    t=float(d["t"]),
                    kind=str(d["kind"]),
                    what=str(d["what"]),
                    detail=str(d.get("detail", "")),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    events.sort(key=lambda e: e.t)
    return events


def first(
    events: Sequence[Event],
    kind: str,
    *,
    after: float,
    what: str | None = None,
    detail: str | None = None,
    before: float | None = None,
) -> Event | None:
    """The earliest event of *kind* in (after, before], optionally matching what/detail."""
    for e in events:
        if e.t <= after or e.kind != kind:
            continue
        if before is not None and e.t > before:
            break
        if (what is None or e.what == what) and (detail is None or e.detail == detail):
            return e
    return None


def last(
    events: Sequence[Event],
    kind: str,
    *,
    before: float,
    what: str | None = None,
    detail: str | None = None,
) -> Event | None:
    """The latest event of *kind* at or before *before*, optionally matching what/detail."""
    for e in reversed(events):
        if e.t > before or e.kind != kind:
            continue
        if (what is None or e.what == what) and (detail is None or e.detail == detail):
            return e
    return None


# --------------------------------------------------------------------------- recording


class _Recorder:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def add(self, event: Event) -> None:
        with self._lock:
            self._out.write(event_to_json(event) + "\n")
            self._out.flush()


def _netlink_event(msg: Any) -> Event | None:
    now = time.monotonic()
    name = msg.get("event")
    if name in ("RTM_NEWADDR", "RTM_DELADDR"):
        address = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
        if address is None:
            return None
        return Event(t=now, kind="addr+" if name == "RTM_NEWADDR" else "addr-", what=address)
    if name in ("RTM_NEWNEIGH", "RTM_DELNEIGH"):
        dst = msg.get_attr("NDA_DST")
        if dst is None:
            return None
        lladdr = msg.get_attr("NDA_LLADDR") or ""
        return Event(
            t=now, kind="neigh" if name == "RTM_NEWNEIGH" else "neigh-", what=dst, detail=lladdr
        )
    return None


def _watch_netlink(recorder: _Recorder, ready: threading.Event) -> None:
    from pyroute2 import IPRoute  # imported here: only this process needs netlink
    from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_NEIGH

    with IPRoute() as ipr:
        ipr.bind(groups=RTMGRP_IPV4_IFADDR | RTMGRP_NEIGH)
        ready.set()
        while True:
            for msg in ipr.get():
                event = _netlink_event(msg)
                if event is not None:
                    recorder.add(event)


def _watch_udp(recorder: _Recorder, port: int, ready: threading.Event) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("0.0.0.0", port))
        ready.set()
        while True:
            data = sock.recv(MAX_PACKET)
            now = time.monotonic()
            mtype, src = packet_fields(data)
            recorder.add(Event(t=now, kind="udp", what=src, detail=mtype))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pulse_lab.watch", description=__doc__)
    p.add_argument("--out", required=True, help="JSON lines file")
    p.add_argument("--duration", type=float, required=True, help="stop after this many seconds")
    p.add_argument("--udp-port", type=int, default=None, help="also record packets to this port")
    p.add_argument("--ready", default=None, help="create this file once everything listens")
    ns = p.parse_args(argv)
    if not 0 < ns.duration <= 24 * 3600:
        p.error("duration must be positive and at most a day")
    with open(ns.out, "a", buffering=1) as out:
        recorder = _Recorder(out)
        readies: list[threading.Event] = []
        watchers: list[tuple[Any, ...]] = [(_watch_netlink, recorder)]
        if ns.udp_port is not None:
            watchers.append((_watch_udp, recorder, ns.udp_port))
        for target, *args in watchers:
            ready = threading.Event()
            readies.append(ready)
            threading.Thread(target=target, args=(*args, ready), daemon=True).start()
        if not all(r.wait(10) for r in readies):
            print("pulse_lab.watch: a watcher did not start", file=sys.stderr)
            return 1
        if ns.ready:
            with open(ns.ready, "w"):
                pass
        time.sleep(ns.duration)  # the watchers are daemon threads: they end with us
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
