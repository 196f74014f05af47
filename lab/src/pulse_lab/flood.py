"""Hostile traffic for a live node's UDP port, for bench/flood and the end-to-end tests.

Run inside an attacker's namespace::

    python -m pulse_lab.flood send --to 198.51.100.10:694 --kind wrong-key \\
        --rate 10000 --duration 30 --src calc [--packets captured.b64] [--out stats.json]
    python -m pulse_lab.flood capture --port 694 --from 198.51.100.12 \\
        --duration 5 --out captured.b64
    python -m pulse_lab.flood listen --port 694 --from 198.51.100.11 \\
        --duration 40 --out arrivals.json

``send`` paces its packets on the monotonic clock (a burst every millisecond, as many
as the rate says are due), stops after ``--duration`` seconds or ``--count`` packets,
whichever comes first, and writes how many it sent of each kind. ``capture`` records
the raw datagrams one source sends to a port (base64, one per line): real, signed
packets of a peer, to replay or mutate later. ``listen`` records when one source's
datagrams arrive (a peer's heartbeats as the other node's kernel gets them) and writes
the arrival times, for the longest gap between two heartbeats.

Kinds (``--kind mix`` cycles through all of them):

* ``wrong-key``: well-formed ``status`` packets from ``--src`` (a real peer's name),
  signed with a key the cluster does not have, with rising sequence numbers;
* ``random``: random bytes, 1 to 1,400 of them;
* ``mutated``: a captured packet with a few bytes changed (the signature no longer fits);
* ``oversized``: a 65,000-byte datagram that starts like a classic packet;
* ``truncated``: a captured packet cut short;
* ``replay``: captured packets, verbatim (signed, but old);
* ``forged``: ``shutdone``, ``hb_takeover`` and ``resource`` messages from ``--src``
  with a made-up signature.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import itertools
import json
import os
import random
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

KINDS = ("wrong-key", "random", "mutated", "oversized", "truncated", "replay", "forged")
MAX_DURATION = 3600.0
MAX_COUNT = 100_000_000
TICK = 0.001  # seconds between two bursts
OVERSIZED = 65_000
_WRONG_KEY = b"not-the-cluster-key"


def _classic(fields: Sequence[tuple[str, str]], key: bytes = _WRONG_KEY) -> bytes:
    """A classic packet signed with HMAC-SHA1 under *key* (index 1)."""
    body = b"".join(f"{name}={value}\n".encode() for name, value in fields)
    digest = hmac.new(key, body, "sha1").hexdigest()
    return b">>>\n" + body + b"auth=1 " + digest.encode() + b"\n<<<\n"


def wrong_key_status(src: str, seq: int, generation: int = 1) -> bytes:
    """A peer's ``status`` as it would look, but signed with a key nobody has."""
    return _classic(
        [
            ("t", "status"),
            ("st", "active"),
            ("dt", "1f4"),
            ("protocol", "1"),
            ("src", src),
            ("seq", format(seq, "x")),
            ("hg", format(generation, "x")),
            ("ts", format(int(time.time()), "x")),
            ("ld", "0.01 0.02 0.00 1/99 1234"),
            ("ttl", "3"),
        ]
    )


def forged_messages(src: str) -> list[bytes]:
    """Resource-protocol messages that would move a group if they were believed."""
    common = [("src", src), ("seq", "ffff"), ("hg", "ffffffff"), ("ts", "1"), ("ttl", "3")]
    return [
        _classic([("t", "shutdone"), *common], key=b"forged"),
        _classic([("t", "hb_takeover"), ("info", "all"), *common], key=b"forged"),
        _classic([("t", "resource"), ("rsc_hold", "all"), ("info", "req"), *common], b"forged"),
    ]


def mutate(packet: bytes, rng: random.Random) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.randint(1, 4)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def generator(
    kind: str, src: str, captured: Sequence[bytes], rng: random.Random
) -> Iterator[bytes]:
    """An endless stream of packets of one kind."""
    if kind in ("mutated", "truncated", "replay") and not captured:
        raise ValueError(f"--kind {kind} needs --packets (captured packets)")
    if kind == "wrong-key":
        # A few hundred distinct packets, cycled: generating each one costs more than
        # sending it, and the receiver cannot tell.
        base = rng.randrange(1, 1 << 20)
        yield from itertools.cycle([wrong_key_status(src, base + i) for i in range(512)])
    elif kind == "random":
        pool = [os.urandom(rng.randint(1, 1400)) for _ in range(512)]
        yield from itertools.cycle(pool)
    elif kind == "mutated":
        pool = [mutate(rng.choice(captured), rng) for _ in range(512)]
        yield from itertools.cycle(pool)
    elif kind == "oversized":
        yield from itertools.repeat(b">>>\nt=status\n" + b"x" * OVERSIZED + b"\n<<<\n")
    elif kind == "truncated":
        pool = [p[: rng.randrange(1, max(2, len(p)))] for p in captured for _ in range(4)]
        yield from itertools.cycle(pool)
    elif kind == "replay":
        yield from itertools.cycle(captured)
    elif kind == "forged":
        yield from itertools.cycle(forged_messages(src))
    else:
        raise ValueError(f"unknown kind {kind!r}")


def mixed(src: str, captured: Sequence[bytes], rng: random.Random) -> Iterator[tuple[str, bytes]]:
    kinds = [k for k in KINDS if captured or k not in ("mutated", "truncated", "replay")]
    streams = {k: generator(k, src, captured, rng) for k in kinds}
    for kind in itertools.cycle(kinds):
        yield kind, next(streams[kind])


def send(
    target: tuple[str, int],
    packets: Iterator[tuple[str, bytes]],
    *,
    rate: float,
    duration: float,
    count: int,
    clock: Callable[[], float] = time.monotonic,
) -> Counter[str]:
    """Send *packets* at *rate* per second for at most *duration* s and *count* packets."""
    sent: Counter[str] = Counter()
    total = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        start = clock()
        end = start + duration
        while total < count:
            now = clock()
            if now >= end:
                break
            due = min(count, int((now - start) * rate) + 1)
            while total < due:
                kind, data = next(packets)
                try:
                    sock.sendto(data, target)
                    sent[kind] += 1
                except OSError:
                    sent["send-error"] += 1
                total += 1
            time.sleep(TICK)
    return sent


def _datagrams(
    port: int, source: str, duration: float, ready: Path | None = None
) -> Iterator[bytes]:
    """Datagrams from *source* to *port* (broadcast too) for *duration* seconds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("0.0.0.0", port))
        if ready is not None:
            ready.touch()
        end = time.monotonic() + duration
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, address = sock.recvfrom(65536)
            except TimeoutError:
                return
            if address[0] == source:
                yield data


def capture(port: int, source: str, duration: float, limit: int) -> list[bytes]:
    """Datagrams from *source* to *port* for *duration* s, at most *limit* of them."""
    return list(itertools.islice(_datagrams(port, source, duration), limit))


def listen(port: int, source: str, duration: float, ready: Path | None) -> list[float]:
    """``time.monotonic()`` of each datagram from *source* to *port* for *duration* s."""
    return [time.monotonic() for _ in _datagrams(port, source, duration, ready)]


def max_gap(arrivals: Sequence[float], start: float, end: float) -> float | None:
    """The longest time between two arrivals within [start, end] (None: fewer than two)."""
    inside = [t for t in arrivals if start <= t <= end]
    if len(inside) < 2:
        return None
    return max(b - a for a, b in itertools.pairwise(inside))


def read_packets(path: Path) -> list[bytes]:
    return [base64.b64decode(line) for line in path.read_text().split() if line]


def write_packets(path: Path, packets: Sequence[bytes]) -> None:
    path.write_text("".join(base64.b64encode(p).decode() + "\n" for p in packets))


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pulse_lab.flood", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("send")
    s.add_argument("--to", required=True, type=_address, help="IP:PORT")
    s.add_argument("--kind", default="wrong-key", choices=(*KINDS, "mix"))
    s.add_argument("--rate", type=float, default=10_000.0, help="packets per second")
    s.add_argument("--duration", type=float, default=10.0)
    s.add_argument("--count", type=int, default=MAX_COUNT)
    s.add_argument("--src", default="calc", help="the peer name to claim")
    s.add_argument("--packets", type=Path, default=None, help="captured packets (base64 lines)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, default=None, help="JSON: packets sent per kind")
    c = sub.add_parser("capture")
    c.add_argument("--port", type=int, default=694)
    c.add_argument("--from", dest="source", required=True, help="source IP to record")
    c.add_argument("--duration", type=float, default=5.0)
    c.add_argument("--limit", type=int, default=10_000)
    c.add_argument("--out", type=Path, required=True)
    w = sub.add_parser("listen")
    w.add_argument("--port", type=int, default=694)
    w.add_argument("--from", dest="source", required=True, help="source IP to time")
    w.add_argument("--duration", type=float, required=True)
    w.add_argument("--ready", type=Path, default=None, help="created once listening")
    w.add_argument("--out", type=Path, required=True, help="JSON: arrival times")
    ns = p.parse_args(argv)
    if not 0 < ns.duration <= MAX_DURATION:
        p.error(f"duration must be positive and at most {MAX_DURATION:.0f} s")
    if ns.command == "capture":
        write_packets(ns.out, capture(ns.port, ns.source, ns.duration, ns.limit))
        return 0
    if ns.command == "listen":
        arrivals = listen(ns.port, ns.source, ns.duration, ns.ready)
        ns.out.write_text(json.dumps({"arrivals": arrivals}) + "\n")
        return 0
    if not 0 < ns.rate <= 1_000_000 or not 0 < ns.count <= MAX_COUNT:
        p.error("rate and count must be positive (rate at most 1,000,000/s)")
    rng = random.Random(ns.seed)
    captured = read_packets(ns.packets) if ns.packets else []
    try:
        if ns.kind == "mix":
            stream = mixed(ns.src, captured, rng)
        else:
            stream = ((ns.kind, data) for data in generator(ns.kind, ns.src, captured, rng))
        sent = send(ns.to, stream, rate=ns.rate, duration=ns.duration, count=ns.count)
    except ValueError as exc:
        print(f"pulse_lab.flood: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(dict(sent), sort_keys=True)
    if ns.out is not None:
        ns.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
