"""Run pulse links inside a test namespace, driven over JSON lines.

Sockets belong to the network namespace of the process that creates them, so an
end-to-end link test runs one agent per node: ``ip netns exec NS python links_agent.py
MEDIA_JSON``. The agent builds a :class:`~pulse.config.model.Config` from the media,
opens them with :func:`pulse.transport.open_links`, and then

* prints ``{"event": "ready", "links": [...]}`` once every link is receiving, or
  ``{"event": "error", "message": ...}`` and exits 2 if one cannot be opened;
* prints ``{"event": "datagram", "link", "peer", "data"}`` (data in hex) per packet;
* obeys ``{"op": "send", "link": i, "data": hex}`` (answers ``{"event": "sent"}``)
  and ``{"op": "stats"}`` (answers ``{"event": "stats", "stats": [...]}``);
* exits when its stdin closes.

:class:`Agent` is the test side: ``async with Agent.start(topo, node, media) as a``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    McastMedium,
    Medium,
    SerialMedium,
    UcastMedium,
)
from pulse.errors import TransportError
from pulse.transport import Datagram, Link, open_links

AGENT = os.path.abspath(__file__)
_MAX_LINE = 1 << 20


def build_config(media: list[dict[str, Any]]) -> Config:
    built: list[Medium] = []
    for m in media:
        args = {k: v for k, v in m.items() if k != "kind"}
        kind = m["kind"]
        if kind == "bcast":
            built.append(BcastMedium(**args))
        elif kind == "ucast":
            built.append(UcastMedium(**args))
        elif kind == "mcast":
            built.append(McastMedium(**args))
        elif kind == "serial":
            built.append(SerialMedium(**args))
        else:
            raise ValueError(f"unknown medium kind {kind!r}")
    auth = AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),))
    return Config(nodes=("a", "b"), media=tuple(built), auth=auth)


class _Lines:
    """Split a byte stream into lines, bounded."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def next(self) -> bytes | None:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                return None
            self._buffer += chunk
            if len(self._buffer) > _MAX_LINE:
                raise RuntimeError("line too long")
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line


# --------------------------------------------------------------------------- agent side


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def _forward(receive: trio.MemoryReceiveChannel[Datagram]) -> None:
    async for dg in receive:
        _emit({"event": "datagram", "link": dg.link, "peer": dg.peer, "data": dg.data.hex()})


async def _serve(media: list[dict[str, Any]]) -> int:
    links: list[Link] = open_links(build_config(media))
    send, receive = trio.open_memory_channel[Datagram](256)
    async with trio.open_nursery() as nursery:
        for link in links:
            try:
                await nursery.start(link.run, send)
            except TransportError as exc:
                _emit({"event": "error", "message": str(exc)})
                nursery.cancel_scope.cancel()
                return 2
        nursery.start_soon(_forward, receive)
        _emit({"event": "ready", "links": [repr(link) for link in links]})
        lines = _Lines(trio.lowlevel.FdStream(os.dup(0)))
        while (line := await lines.next()) is not None:
            command = json.loads(line)
            if command["op"] == "send":
                await links[command["link"]].send(bytes.fromhex(command["data"]))
                _emit({"event": "sent", "link": command["link"]})
            elif command["op"] == "burst":  # many packets back to back, never waiting
                link = links[command["link"]]
                for i in range(command["count"]):
                    data = b"%s %d" % (bytes.fromhex(command["data"]), i)
                    if not link.try_send_nowait(data):
                        await link.send(data)
                _emit({"event": "sent", "link": command["link"]})
            elif command["op"] == "stats":
                stats = [dataclasses.asdict(link.statistics()) for link in links]
                _emit({"event": "stats", "stats": stats})
        nursery.cancel_scope.cancel()
    return 0


# --------------------------------------------------------------------------- test side


class Agent:
    """The test's handle on one agent process."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._lines = _Lines(process.stdout)
        self.datagrams: list[dict[str, Any]] = []
        self.links: list[str] = []

    @classmethod
    @asynccontextmanager
    async def start(
        cls, argv_prefix: list[str], media: list[dict[str, Any]]
    ) -> AsyncIterator[Agent]:
        """Start an agent with ``argv_prefix`` (``topo.exec_argv(node, [])``) and wait for
        it to be ready. Raises TransportError with the agent's message if a link fails."""
        argv = [*argv_prefix, sys.executable, AGENT, json.dumps(media)]
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            agent = cls(process)
            ready = await agent._next_event()
            if ready["event"] == "error":
                raise TransportError(ready["message"])
            assert ready["event"] == "ready", ready
            agent.links = ready["links"]
            yield agent
        finally:
            with trio.CancelScope(shield=True):
                await process.stdin.aclose() if process.stdin else None
                with trio.move_on_after(5):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()

    async def _next_event(self) -> dict[str, Any]:
        line = await self._lines.next()
        if line is None:
            raise RuntimeError(f"agent exited (status {await self.process.wait()})")
        event: dict[str, Any] = json.loads(line)
        return event

    async def _command(self, command: dict[str, Any], answer: str) -> dict[str, Any]:
        await self._stdin.send_all(json.dumps(command).encode() + b"\n")
        while True:
            event = await self._next_event()
            if event["event"] == answer:
                return event
            if event["event"] == "datagram":
                self.datagrams.append(event)

    async def send(self, link: int, data: bytes) -> None:
        await self._command({"op": "send", "link": link, "data": data.hex()}, "sent")

    async def burst(self, link: int, data: bytes, count: int) -> None:
        """Send ``data + b" 0"`` … ``data + b" COUNT-1"`` as fast as the link takes them."""
        command = {"op": "burst", "link": link, "data": data.hex(), "count": count}
        await self._command(command, "sent")

    async def stats(self) -> list[dict[str, Any]]:
        stats: list[dict[str, Any]] = (await self._command({"op": "stats"}, "stats"))["stats"]
        return stats

    async def expect(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first datagram (already seen or next to come) for which ``match`` holds."""
        for i, event in enumerate(self.datagrams):
            if match(event):
                return self.datagrams.pop(i)
        while True:
            event = await self._next_event()
            if event["event"] != "datagram":
                continue
            if match(event):
                return event
            self.datagrams.append(event)


def main() -> int:
    return trio.run(_serve, json.loads(sys.argv[1]))


if __name__ == "__main__":
    sys.exit(main())
