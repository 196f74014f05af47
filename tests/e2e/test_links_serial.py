"""Serial links over pseudo-terminals: socat pairs as null-modem cables, and bare ptys.

Serial devices are not namespaced, so these tests run the links in-process. They use
real time, always under ``trio.fail_after``.
"""

from __future__ import annotations

import os
import subprocess
import time
import tty
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import trio

from pulse.errors import TransportError
from pulse.transport import Datagram, SerialLink
from pulse_lab.netns import Topology

BAUD = 19200


def _frame(i: int) -> bytes:
    return b">>>\nt=status\nsrc=node1\nseq=%x\nauth=1 0123456789abcdef\n<<<\n" % i


@asynccontextmanager
async def _running(
    link: SerialLink,
) -> AsyncIterator[trio.MemoryReceiveChannel[Datagram]]:
    send, receive = trio.open_memory_channel[Datagram](100)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run, send)
        yield receive
        nursery.cancel_scope.cancel()


async def test_serial_pair_carries_frames_both_ways_at_19200_baud(topology: Topology) -> None:
    end_a, end_b = topology.serial_pair()
    link_a, link_b = SerialLink(device=end_a, baud=BAUD), SerialLink(device=end_b, baud=BAUD)
    with trio.fail_after(20):
        async with _running(link_a) as inbox_a, _running(link_b) as inbox_b:
            for i in range(5):
                await link_a.send(_frame(i))
            for i in range(5):
                got = await inbox_b.receive()
                assert got == Datagram(link=end_b, data=_frame(i), peer=end_b)
            await link_b.send(_frame(99))
            assert (await inbox_a.receive()).data == _frame(99)
    assert link_a.statistics().packets_sent == 5
    assert link_b.statistics().packets_received == 5
    assert link_b.statistics().bytes_received == sum(len(_frame(i)) for i in range(5))


async def test_serial_link_skips_line_noise_and_restores_stripped_bytes(
    topology: Topology,
) -> None:
    end_a, end_b = topology.serial_pair()
    link_b = SerialLink(device=end_b, baud=BAUD)
    with trio.fail_after(20):
        async with _running(link_b) as inbox_b:
            fd = os.open(end_a, os.O_RDWR | os.O_NOCTTY)
            try:
                tty.setraw(fd)
                # A console banner, then a frame with CRLF endings and the 8th bit set.
                noisy = bytes(b | 0x80 for b in _frame(1).replace(b"\n", b"\r\n"))
                os.write(fd, b"Debian GNU/Linux 12 ttyS0\r\n\r\nlogin: \r\n" + noisy)
                assert (await inbox_b.receive()).data == _frame(1)
            finally:
                os.close(fd)


async def test_serial_link_refuses_to_send_netstring_packets(topology: Topology) -> None:
    end_a, _ = topology.serial_pair()
    link = SerialLink(device=end_a, baud=BAUD)
    with trio.fail_after(20):
        async with _running(link):
            await link.send(b"###\n9:(0)t=stat,\n%%%\n")
    stats = link.statistics()
    assert (stats.packets_sent, stats.send_errors) == (0, 1)
    assert stats.last_error is not None and "classic" in stats.last_error


async def test_a_second_opener_of_a_serial_device_is_told_it_is_busy(topology: Topology) -> None:
    end_a, _ = topology.serial_pair()
    with trio.fail_after(20):
        async with _running(SerialLink(device=end_a, baud=BAUD)):
            with pytest.RaisesGroup(pytest.RaisesExc(TransportError, match="busy")):
                async with _running(SerialLink(device=end_a, baud=BAUD)):
                    pass  # pragma: no cover


async def test_a_missing_serial_device_is_reported_at_open(tmp_path: Path) -> None:
    link = SerialLink(device=str(tmp_path / "ttyS9"), baud=BAUD)
    with (
        trio.fail_after(5),
        pytest.RaisesGroup(pytest.RaisesExc(TransportError, match="does not exist")),
    ):
        async with _running(link):
            pass  # pragma: no cover


def _start_socat(ends: tuple[Path, Path]) -> subprocess.Popen[bytes]:
    """A socat pty pair at fixed paths, so it can be replaced like a re-plugged cable."""
    proc = subprocess.Popen(
        ["socat", *(f"pty,raw,echo=0,link={end}" for end in ends)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while not all(end.exists() for end in ends):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError("socat did not create the pty pair")
        time.sleep(0.01)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=3)


@contextmanager
def _cables() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            _stop(proc)


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - polls a statistics snapshot, bounded by fail_after
        await trio.sleep(0.01)


async def test_serial_link_survives_a_pulled_cable_and_delivers_after_replug(
    topology: Topology, tmp_path: Path
) -> None:
    del topology  # only for its skip: socat ptys need the same privileges
    ends = (tmp_path / "ttyA", tmp_path / "ttyB")
    link_b = SerialLink(device=str(ends[1]), baud=BAUD, reopen_backoff=(0.05, 0.2))
    with _cables() as cables, trio.fail_after(20):
        cables.append(_start_socat(ends))
        async with _running(link_b) as inbox_b:
            link_a = SerialLink(device=str(ends[0]), baud=BAUD)
            async with _running(link_a):
                await link_a.send(_frame(1))
                assert (await inbox_b.receive()).data == _frame(1)
            _stop(cables.pop())  # the cable is pulled: both ptys vanish
            await _until(lambda: link_b.statistics().receive_errors > 0)
            await link_b.send(_frame(2))  # dropped and counted, never raised
            cables.append(_start_socat(ends))
            await _until(lambda: link_b.statistics().reopens > 0)
            link_a = SerialLink(device=str(ends[0]), baud=BAUD)
            async with _running(link_a):
                await link_a.send(_frame(3))
                assert (await inbox_b.receive()).data == _frame(3)
    stats = link_b.statistics()
    assert stats.reopens == 1
    assert stats.send_errors == 1
    assert stats.packets_received == 2


async def test_a_stuck_serial_line_drops_the_frame_instead_of_blocking(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        link = SerialLink(device=os.ttyname(slave), baud=115200, write_timeout=0.05)
        big = b">>>\n" + b"x=" + b"y" * 8000 + b"\n<<<\n"
        with trio.fail_after(20):
            async with _running(link):
                # Nobody reads the master side: the pty buffer fills, then writes stall.
                for _ in range(64):
                    await link.send(big)
                    if link.statistics().send_errors:
                        break
        stats = link.statistics()
        assert stats.send_errors >= 1
        assert stats.last_error is not None and "timed out" in stats.last_error
    finally:
        os.close(master)
        os.close(slave)
