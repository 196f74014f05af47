"""The receive filter drops ACKs for other nodes and our own echoes in the kernel,
counts each, and keeps everything else whole (pulse.transport.sockfilter, on real
loopback sockets; the eBPF tests need root, as pulse does)."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest
import trio

from pulse.transport import Datagram
from pulse.transport.sockfilter import MAX_NAME, DropCounts, echo_filter
from pulse.transport.udp import UcastLink, attach_filter, kernel_drops
from pulse.wire.codec import ack_for_another

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def received(
    rx: socket.socket, packets: list[bytes], sender: socket.socket | None = None
) -> list[bytes]:
    """What *rx* receives of *packets* (sent from *sender*, else a new socket), in order.

    Every datagram is either queued or dropped, and the kernel counts what a filter
    drops as a drop of the socket (SO_MEMINFO): done when the two add up.
    """
    rx.setblocking(False)
    drops_before = kernel_drops(rx)
    if sender is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as new:
            for data in packets:
                new.sendto(data, rx.getsockname())
    else:
        for data in packets:
            sender.sendto(data, rx.getsockname())
    got: list[bytes] = []
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            got.append(rx.recv(65535))
        except BlockingIOError:
            if len(got) + kernel_drops(rx) - drops_before == len(packets):
                return got
            time.sleep(0.001)
    raise AssertionError(f"{len(packets)} sent, {len(got)} received, the rest not dropped")


@pytest.fixture
def rx() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


@pytest.fixture
def counts() -> Iterator[DropCounts]:
    try:
        made = DropCounts()
    except OSError as exc:  # not root: no CAP_BPF
        pytest.skip(f"no eBPF here: {exc}")
    yield made
    made.close()


def classic_ack(dest: bytes) -> bytes:
    return b">>>\nt=NS_ackmsg\ndest=" + dest + b"\nackseq=1a\nsrc=beta\n<<<\n"


def netstring_ack(dest: bytes) -> bytes:
    field = b"(0)dest=" + dest
    return b"###\n14:(0)t=NS_ackmsg," + str(len(field)).encode() + b":" + field + b",%%%\n"


KEPT = [
    classic_ack(b"alpha"),
    classic_ack(b"ALPHA"),  # node names compare without case, as in the engine
    netstring_ack(b"alpha"),
    netstring_ack(b"Alpha"),
    netstring_ack(b"beta"),  # another length than ours: left to ack_for_another
    b">>>\nt=NS_ackmsg\ndest=alpha",  # too short to test the end: left to the decoder
    b">>>\nt=NS_ackmsg\ndest=",
    b">>>\nt=NS_ackmsg\n",
    b">>>\nt=status\nst=active\nsrc=beta\n<<<\n",
    b">>>\nt=NS_rexmit\ndest=beta\n<<<\n",  # a retransmission request: not an ACK
    b"",
    b"x",
]
DROPPED = [
    classic_ack(b"beta"),
    classic_ack(b"alphabet"),
    classic_ack(b"alph"),
    netstring_ack(b"bravo"),  # the same length as ours
]


def test_acks_for_other_nodes_are_dropped_counted_and_the_rest_kept_whole(
    rx: socket.socket, counts: DropCounts
) -> None:
    counts.attach(rx, None, b"alpha")
    assert received(rx, KEPT + DROPPED) == KEPT
    assert counts.read() == (0, len(DROPPED))
    assert kernel_drops(rx) == len(DROPPED)  # the socket's own count has them too


@pytest.mark.parametrize("data", DROPPED)
def test_what_the_kernel_drops_the_codec_drops_too(data: bytes) -> None:
    # Never stricter than the Python check: the kernel drops nothing it would keep.
    assert ack_for_another(data, b"alpha")


def test_without_a_name_every_ack_is_kept(rx: socket.socket, counts: DropCounts) -> None:
    counts.attach(rx, (LOOPBACK, 1), None)
    assert received(rx, KEPT + DROPPED) == KEPT + DROPPED


def test_a_name_too_long_for_the_program_gets_no_ack_filter(
    rx: socket.socket, counts: DropCounts
) -> None:
    counts.attach(rx, None, b"n" * (MAX_NAME + 1))
    assert received(rx, DROPPED) == DROPPED


def test_the_longest_name_is_filtered(rx: socket.socket, counts: DropCounts) -> None:
    name = b"n" * MAX_NAME
    kept = [classic_ack(name), netstring_ack(name.upper())]
    dropped = [classic_ack(b"m" * MAX_NAME), netstring_ack(b"m" * MAX_NAME)]
    counts.attach(rx, None, name)
    assert received(rx, kept + dropped) == kept


def test_our_own_echoes_are_dropped_and_counted_apart_from_the_acks(
    rx: socket.socket, counts: DropCounts
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours:
        ours.bind(("127.0.0.1", 0))
        counts.attach(rx, (LOOPBACK, ours.getsockname()[1]), b"alpha")
        assert received(rx, KEPT + DROPPED, ours) == []
        assert received(rx, KEPT + DROPPED) == KEPT  # another port: not ours
        assert counts.read() == (len(KEPT + DROPPED), len(DROPPED))


def test_a_filter_attached_again_keeps_counting(rx: socket.socket, counts: DropCounts) -> None:
    counts.attach(rx, None, b"alpha")
    received(rx, DROPPED)
    counts.attach(rx, (ipaddress.IPv4Address("127.0.0.2"), 1), b"alpha")  # address changed
    received(rx, DROPPED)
    assert counts.read() == (0, 2 * len(DROPPED))


@pytest.mark.parametrize("echo", [None, (ipaddress.IPv4Address("198.51.100.1"), 694)])
@pytest.mark.parametrize("local", [None, b"a", b"alpha", b"n" * MAX_NAME])
def test_the_verifier_accepts_every_shape_of_the_program(
    rx: socket.socket,
    counts: DropCounts,
    echo: tuple[ipaddress.IPv4Address, int] | None,
    local: bytes | None,
) -> None:
    counts.attach(rx, echo, local)


def test_without_ebpf_the_classic_filter_drops_our_echoes_only(rx: socket.socket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours:
        ours.bind(("127.0.0.1", 0))
        attach_filter(rx, echo_filter(LOOPBACK, ours.getsockname()[1]))
        assert received(rx, KEPT + DROPPED, ours) == []
        assert received(rx, KEPT + DROPPED) == KEPT + DROPPED


async def test_a_udp_link_reports_the_filtered_acks_apart_from_its_kernel_drops(
    counts: DropCounts,
) -> None:
    # A ucast link on the loopback interface, as Comms sets it up: ACKs for another
    # node never reach it and are counted as such, not as drops of a full buffer.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free now, bound again by the link below
    link = UcastLink(interface="lo", port=port, peers=("127.0.0.1",))
    inbound, arrived = trio.open_memory_channel[Datagram](100)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(link.run, inbound)
            link.filter_acks(b"alpha")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                for data in KEPT[:3] + DROPPED:
                    peer.sendto(data, ("127.0.0.1", port))
            got = [(await arrived.receive()).data for _ in range(3)]
            stats = link.statistics()
            nursery.cancel_scope.cancel()
    assert got == KEPT[:3]
    assert stats.acks_for_others == len(DROPPED)
    assert stats.kernel_drops == 0
    assert stats.packets_received == 3
