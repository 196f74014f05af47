"""A daemon's control socket under abusive clients still answers a real pulsectl
(in-process daemon, real time, fake links; docs/hostile-input.md)."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import random
import socket
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from pulse.cli import ctl
from pulse.config import Loaded
from pulse.config.model import Timing
from pulse.control import server
from pulse.control.protocol import Request
from pulse.daemon import DaemonOptions, serve
from pulse.testing import FakeNetwork
from pulse.testing.agents import two_node_config

CONFIG = two_node_config(
    Timing(keepalive=100, deadtime=500, warntime=300, initdead=1000, deadping=500)
)


async def start_daemon(nursery: trio.Nursery, tmp_path: Path) -> Path:
    sock = tmp_path / "prime.sock"
    options = DaemonOptions(
        state_dir=tmp_path / "prime",
        control_socket=sock,
        handle_signals=False,
        rng=random.Random(1),
        generation=3,
        uuid=b"prime".ljust(16, b"\0"),
        loadavg=lambda: "n/a",
    )
    loaded = Loaded(config=CONFIG, node="prime", warnings=())
    links = [FakeNetwork().link("prime", "eth0")]
    await nursery.start(functools.partial(serve, loaded, options, links=links))
    return sock


async def exchange(path: Path, data: bytes, *, read: bool = True) -> bytes:
    """Send *data* on a fresh connection and read the reply line (or nothing)."""
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        with contextlib.suppress(trio.BrokenResourceError):  # it replied and hung up first
            await stream.send_all(data)
        if not read:
            return b""
        buf = b""
        with trio.move_on_after(5):
            while b"\n" not in buf:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                buf += chunk
        return buf


def error_of(reply: bytes) -> str:
    obj = json.loads(reply.split(b"\n", 1)[0])
    assert obj["ok"] is False
    return str(obj["error"])


async def test_oversized_and_deeply_nested_requests_get_a_clear_error_without_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            sock = await start_daemon(nursery, tmp_path)
            huge = await exchange(sock, b"x" * (10 << 20) + b"\n")
            assert "request longer than" in error_of(huge)
            deepest = await exchange(sock, b"[" * 100_000 + b"]" * 100_000 + b"\n")
            assert "request longer than" in error_of(deepest)
            nested = await exchange(sock, b"[" * 30_000 + b"]" * 30_000 + b"\n")  # < 64 KiB
            assert "nested deeper" in error_of(nested)
            garbage = await exchange(sock, b"\xff\xfe{not json\n")
            assert error_of(garbage).startswith("bad request")
            nursery.cancel_scope.cancel()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_pulsectl_status_answers_while_a_thousand_clients_abuse_the_socket(
    tmp_path: Path,
) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            sock = await start_daemon(nursery, tmp_path)
            silent: list[socket.socket] = []
            refused = 0

            async def abuse() -> None:
                nonlocal refused
                rng = random.Random(0)
                async with trio.open_nursery() as clients:
                    for i in range(1000):
                        kind = i % 4
                        if kind == 0:  # half-open: connects, never says a word
                            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                            s.setblocking(False)
                            try:
                                s.connect(str(sock))
                            except BlockingIOError:
                                refused += 1
                                s.close()
                                continue
                            silent.append(s)
                        elif kind == 1:  # garbage
                            junk = bytes(rng.randrange(256) for _ in range(200)) + b"\n"
                            clients.start_soon(functools.partial(exchange, sock, junk, read=False))
                        elif kind == 2:  # a line that never ends
                            clients.start_soon(
                                functools.partial(exchange, sock, b"{" * 5000, read=False)
                            )
                        else:  # connect and hang up at once
                            clients.start_soon(functools.partial(exchange, sock, b"", read=False))
                        if i % 50 == 0:
                            await trio.lowlevel.checkpoint()

            nursery.start_soon(abuse)
            await trio.sleep(0.2)
            answers = []
            for _ in range(3):
                request = functools.partial(ctl.call, str(sock), Request("status", {}), 5.0)
                reply = await trio.to_thread.run_sync(request)
                answers.append(reply)
                await trio.sleep(0.1)
            assert all(r.ok and r.result["node"] == "prime" for r in answers)
            for s in silent:
                s.close()
            nursery.cancel_scope.cancel()


def test_pulsectl_retries_a_connect_the_full_backlog_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "busy.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):  # fill the backlog: further connects get EAGAIN
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
            except BlockingIOError:
                s.close()
                break
            fillers.append(s)
        with pytest.raises(BlockingIOError) as caught:
            ctl.call(path, Request("ping", {}), 0.5, retry_for=0.1)
        assert caught.value.errno == errno.EAGAIN
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_the_backlog_and_client_cap_are_deep_enough_for_bursts() -> None:
    assert server.BACKLOG >= 128
    assert server.MAX_CLIENTS >= 16
    assert server.REQUEST_TIMEOUT < server.CLIENT_TIMEOUT
