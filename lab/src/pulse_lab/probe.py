"""An HTTP client that measures outages the way a user feels them.

Every ``interval`` seconds it starts a new request to the URL, without waiting for
the previous ones (a request stuck in a TCP retransmission must not blind it), and
records when each request *started*, whether it succeeded and who answered. A
request counts as a success only if it completed within ``fresh`` seconds: one that
was sent during the outage and answered a second later by a SYN retransmission says
nothing about the service at the time it was sent.

The outage around an event is then the longest gap between the start times of two
consecutive successful requests: with a 10 ms interval, the resolution is 10 ms
whatever the timeouts.

Run inside a client namespace::

    python -m pulse_lab.probe --url http://198.51.100.100/ --duration 60 --out probe.jsonl

Each line of the output is ``{"t": monotonic start, "ok": bool, "who": body, "ms": latency}``.
``time.monotonic`` is the same clock in every network namespace, so the orchestrator
can line these up with its own events.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

import trio

MAX_IN_FLIGHT = 500


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # monotonic time the request was sent
    ok: bool
    who: str  # the response body (the serving node's name), or the error
    ms: float  # latency in milliseconds


async def _request(host: str, port: int, path: str, timeout: float) -> str:
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(
                f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            data = bytearray()
            while len(data) < 65536:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise OSError(f"HTTP status {status.decode(errors='replace')}")
    return body.decode(errors="replace").strip()


async def probe(
    url: str,
    *,
    interval: float,
    timeout: float,
    fresh: float,
    duration: float,
    out: IO[str],
) -> None:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    in_flight = trio.CapacityLimiter(MAX_IN_FLIGHT)
    pending: list[str] = []

    async def one(sent: float) -> None:
        async with in_flight:
            try:
                who = await _request(host, port, path, timeout)
                ok = True
            except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
                # BrokenResourceError: trio's stream wraps a reset (ECONNRESET), e.g. from
                # the new holder of the address answering a connection made to the old one.
                who, ok = type(exc).__name__, False
            took = time.monotonic() - sent
            sample = Sample(sent, ok and took <= fresh, who, round(took * 1000, 2))
            pending.append(json.dumps(_as_dict(sample)) + "\n")

    def write(lines: list[str]) -> None:
        out.writelines(lines)
        out.flush()

    async def writer() -> None:
        # Samples reach the file within 50 ms, written off the trio thread.
        while True:
            await trio.sleep(0.05)
            if pending:
                lines, pending[:] = pending[:], []
                await trio.to_thread.run_sync(write, lines)

    end = trio.current_time() + duration
    async with trio.open_nursery() as outer:
        outer.start_soon(writer)
        async with trio.open_nursery() as nursery:
            next_at = trio.current_time()
            while next_at < end:
                await trio.sleep_until(next_at)
                nursery.start_soon(one, time.monotonic())
                next_at += interval
        outer.cancel_scope.cancel()
    write(pending)


def _as_dict(sample: Sample) -> dict[str, object]:
    return {"t": sample.t, "ok": sample.ok, "who": sample.who, "ms": sample.ms}


def read_samples(lines: Iterable[str]) -> list[Sample]:
    samples = []
    for line in lines:
        try:
            d = json.loads(line)
            samples.append(Sample(float(d["t"]), bool(d["ok"]), str(d["who"]), float(d["ms"])))
        except (ValueError, KeyError, TypeError):
            continue  # a line being written right now
    samples.sort(key=lambda s: s.t)
    return samples


def serving(samples: Sequence[Sample], since: float) -> str | None:
    """Who answered the most recent successful request sent after *since*."""
    for s in reversed(samples):
        if s.t >= since and s.ok:
            return s.who
    return None


@dataclass(frozen=True, slots=True)
class Outage:
    seconds: float  # longest gap between consecutive successful requests
    begin: float  # start time of the last success before the gap
    end: float  # start time of the first success after it
    before: str  # who answered before
    after: str  # who answered after


def outage(samples: Sequence[Sample], start: float, end: float) -> Outage | None:
    """The longest gap between successes whose second success was sent in (start, end]."""
    ok = [s for s in samples if s.ok and s.t <= end]
    best: Outage | None = None
    for a, b in itertools.pairwise(ok):
        if b.t <= start:
            continue
        gap = b.t - a.t
        if best is None or gap > best.seconds:
            best = Outage(gap, a.t, b.t, a.who, b.who)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pulse_lab.probe", description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--interval", type=float, default=0.01, help="seconds between requests")
    p.add_argument("--timeout", type=float, default=2.0, help="give up on a request after")
    p.add_argument("--fresh", type=float, default=0.1, help="a success slower than this is late")
    p.add_argument("--duration", type=float, required=True, help="stop after this many seconds")
    p.add_argument("--out", required=True, help="JSON lines file")
    ns = p.parse_args(argv)
    if not 0.001 <= ns.interval <= 10 or not 0 < ns.duration <= 3600:
        p.error("interval must be 1 ms..10 s and duration at most an hour")
    with open(ns.out, "a", buffering=1) as out:
        trio.run(
            lambda: probe(
                ns.url,
                interval=ns.interval,
                timeout=ns.timeout,
                fresh=ns.fresh,
                duration=ns.duration,
                out=out,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
