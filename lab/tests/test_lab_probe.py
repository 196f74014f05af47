"""pulse_lab.probe: a failed request is a sample, never the end of the probe."""

from __future__ import annotations

import io
import json
import socket
import struct
from functools import partial

import trio

from pulse_lab.probe import outage, probe, read_samples


async def _reset(stream: trio.SocketStream) -> None:
    """Read the request, then close with SO_LINGER 0: the client gets a TCP RST."""
    await stream.receive_some(4096)
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


async def test_probe_records_a_connection_reset_as_a_failure_and_keeps_probing() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, _reset, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        out = io.StringIO()
        await probe(
            f"http://127.0.0.1:{port}/", interval=0.01, timeout=2.0, fresh=2.0,
            duration=0.2, out=out,
        )  # fmt: skip
        nursery.cancel_scope.cancel()
    lines = out.getvalue().splitlines()
    samples = read_samples(lines)
    assert len(samples) >= 10
    assert not any(s.ok for s in samples)
    assert {json.loads(line)["who"] for line in lines} <= {"BrokenResourceError", "OSError"}


def test_outage_is_the_longest_gap_between_successes_ending_after_the_event() -> None:
    lines = [
        json.dumps({"t": t, "ok": ok, "who": "prime" if t < 1.5 else "calc", "ms": 1.0})
        for t, ok in [(1.0, True), (1.01, True), (1.02, False), (1.5, False), (1.53, True)]
    ]
    gap = outage(read_samples(lines), start=1.015, end=2.0)
    assert gap is not None
    assert round(gap.seconds, 3) == 0.52
    assert (gap.before, gap.after) == ("prime", "calc")
