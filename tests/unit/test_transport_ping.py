"""ICMP ping links without sockets: echo packets, reply filtering, the engine's view."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import itertools
import math
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from protocol_harness import AUTH, make_config, make_engine

from pulse.config import Loaded
from pulse.config.model import AuthKey, AuthKeys, AuthMethod, Config
from pulse.daemon import Daemon, DaemonOptions, serve
from pulse.errors import TransportError, WireError
from pulse.protocol.events import NodeStatus, NodeStatusChanged
from pulse.testing import FakeNetwork
from pulse.transport import Datagram
from pulse.transport.ping import (
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    MalformedPacket,
    PingLink,
    echo_request,
    internet_checksum,
    parse_icmp,
    ping_message,
)
from pulse.wire.auth import Signer
from pulse.wire.codec import Encoding, decode, encode

ROUTER = "198.51.100.254"
SIGNER = Signer(AUTH)
IDENT = 0x4242
WALL = 1_800_000_000.0


def ipv4_header(source: str = ROUTER, *, options: bytes = b"") -> bytes:
    """A minimal IPv4 header as a raw ICMP socket hands it over (checksum not checked)."""
    ihl = 5 + len(options) // 4
    return (
        bytes([0x40 | ihl, 0])
        + struct.pack("!HHHBBH", 0, 0, 0, 64, socket.IPPROTO_ICMP, 0)
        + socket.inet_aton(source)
        + socket.inet_aton("198.51.100.10")
        + options
    )


def as_reply(request: bytes) -> bytes:
    """What a host answers to an ICMP echo request: type 0, same id, seq and data."""
    unsigned = bytes([ICMP_ECHO_REPLY, 0, 0, 0]) + request[4:]
    return unsigned[:2] + struct.pack("!H", internet_checksum(unsigned)) + unsigned[4:]


class CapturingSocket:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[Any, ...]]] = []

    def sendto(self, data: bytes, address: tuple[Any, ...]) -> int:
        self.sent.append((data, address))
        return len(data)


async def resolved(link: PingLink) -> PingLink:
    await link._resolve()  # literal addresses: no resolver thread
    return link


async def ping_link(
    name: str = ROUTER,
    hosts: tuple[str, ...] = (ROUTER,),
    info: str = "ping",
    interval: float = 1.0,
) -> PingLink:
    link = PingLink(
        name=name, hosts=hosts, info=info, interval=interval, signer=SIGNER, ident=IDENT,
        wallclock=lambda: WALL,
    )  # fmt: skip
    return await resolved(link)


def sent_requests(link: PingLink) -> list[tuple[bytes, tuple[Any, ...]]]:
    sock = CapturingSocket()
    link.ping_once(sock)  # type: ignore[arg-type]
    return sock.sent


def payload_for(node: str, info: str = "ping") -> bytes:
    return encode(ping_message(node, info, int(WALL)), SIGNER, Encoding.CLASSIC)


# --------------------------------------------------------------------------- packets


def test_checksum_matches_the_rfc_1071_worked_example() -> None:
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_checksum_pads_an_odd_length_with_a_zero_byte() -> None:
    assert internet_checksum(b"\x12\x34\x56") == internet_checksum(b"\x12\x34\x56\x00")


def test_an_echo_request_carries_type_8_our_id_the_sequence_and_a_valid_checksum() -> None:
    packet = echo_request(0xBEEF, 7, b"payload")
    assert packet[0] == ICMP_ECHO_REQUEST and packet[1] == 0
    assert struct.unpack("!HH", packet[4:8]) == (0xBEEF, 7)
    assert packet[8:] == b"payload"
    assert internet_checksum(packet) == 0


def test_an_icmpv6_echo_request_leaves_the_checksum_to_the_kernel() -> None:
    packet = echo_request(1, 2, b"x", ipv6=True)
    assert (packet[0], packet[2:4]) == (128, b"\0\0")


def test_the_sequence_number_wraps_at_16_bits() -> None:
    assert struct.unpack("!H", echo_request(1, 0x10001, b"")[6:8]) == (1,)


@given(
    ident=st.integers(0, 0xFFFF),
    seq=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=300),
    options=st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x01" * 8]),
)
def test_a_reply_parses_back_to_the_request_fields_behind_any_ipv4_header(
    ident: int, seq: int, payload: bytes, options: bytes
) -> None:
    echo = parse_icmp(ipv4_header(options=options) + as_reply(echo_request(ident, seq, payload)))
    assert (echo.type, echo.code, echo.ident, echo.seq, echo.payload) == (
        ICMP_ECHO_REPLY, 0, ident, seq, payload,
    )  # fmt: skip


@given(payload=st.binary(min_size=1, max_size=100), data=st.data())
def test_any_corrupted_byte_of_the_icmp_part_fails_the_checksum(
    payload: bytes, data: st.DataObject
) -> None:
    packet = bytearray(as_reply(echo_request(IDENT, 3, payload)))
    at = data.draw(st.integers(0, len(packet) - 1))
    packet[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(MalformedPacket, match="checksum"):
        parse_icmp(ipv4_header() + bytes(packet))


@given(st.binary(max_size=80), st.booleans())
def test_arbitrary_bytes_parse_or_raise_malformed_packet_and_nothing_else(
    data: bytes, ipv6: bool
) -> None:
    with contextlib.suppress(MalformedPacket):
        parse_icmp(data, ipv6=ipv6)


@pytest.mark.parametrize(
    ("packet", "problem"),
    [
        (b"", "not an IPv4"),
        (b"\x60" + b"\0" * 40, "not an IPv4"),
        (b"\x44" + b"\0" * 30, "below 20"),
        (ipv4_header() + b"\0\0\0", "truncated"),
        (ipv4_header(options=b"\x01" * 8)[:24], "truncated"),
    ],
)
def test_short_or_non_ipv4_packets_are_malformed(packet: bytes, problem: str) -> None:
    with pytest.raises(MalformedPacket, match=problem):
        parse_icmp(packet)


# --------------------------------------------------------------------------- the link


async def test_once_per_round_every_host_gets_a_signed_ping_message_with_a_rising_seq() -> None:
    link = await ping_link("routers", ("198.51.100.253", ROUTER), info="ping_group")
    first, second = sent_requests(link), sent_requests(link)
    assert [address[0] for _, address in first] == ["198.51.100.253", ROUTER]
    assert first[0][0] == first[1][0]  # one echo, the same for every host of the group
    assert [struct.unpack("!H", p[6:8])[0] for p, _ in (first[0], second[0])] == [0, 1]
    message = decode(first[0][0][8:], SIGNER).message
    assert [(f.name, f.value) for f in message] == [
        ("t", b"NS_st"), ("st", b"ping"), ("info", b"ping_group"), ("src", b"routers"),
        ("ts", b"%x" % int(WALL)),
    ]  # fmt: skip
    assert link.statistics().packets_sent == 4


async def test_a_netstring_cluster_signs_its_pings_as_netstrings() -> None:
    link = PingLink(
        name=ROUTER, hosts=(ROUTER,), info="ping", interval=1.0, signer=SIGNER,
        encoding=Encoding.NETSTRING,
    )  # fmt: skip
    [(packet, _)] = sent_requests(await resolved(link))
    assert decode(packet[8:], SIGNER).encoding is Encoding.NETSTRING


async def test_our_echoed_ping_comes_out_as_a_datagram_on_the_link_named_after_the_node() -> None:
    link = await ping_link()
    [(request, _)] = sent_requests(link)
    dgram = link.accept(ipv4_header() + as_reply(request), ROUTER)
    assert dgram == Datagram(link=ROUTER, data=request[8:], peer=ROUTER)
    assert link.statistics().packets_received == 1


async def test_the_engine_marks_the_ping_node_ping_from_the_echoed_payload() -> None:
    config = make_config(("alpha", "beta"), ping=(ROUTER,))
    engine = make_engine(config, "alpha")
    link = await ping_link()
    [(request, _)] = sent_requests(link)
    dgram = link.accept(ipv4_header() + as_reply(request), ROUTER)
    assert dgram is not None
    engine.receive(decode(dgram.data, SIGNER).message, dgram.link, 1.0)
    [ping_node] = [n for n in engine.view().nodes if n.name == ROUTER]
    assert ping_node.status is NodeStatus.PING


async def start_daemon(
    nursery: trio.Nursery, config: Config, link: PingLink, tmp_path: Path
) -> tuple[Daemon, Loaded]:
    """Node alpha of *config* with a fake network link and *link* (its run replaced)."""
    options = DaemonOptions(
        state_dir=tmp_path, handle_signals=False, generation=1, uuid=b"alpha".ljust(16, b"\0"),
        loadavg=lambda: "n/a",
    )  # fmt: skip
    links = [FakeNetwork().link("alpha", "eth0"), link]
    running = Loaded(config=config, node="alpha", warnings=())
    daemon = await nursery.start(functools.partial(serve, running, options, links=links))
    return daemon, running


async def test_after_a_reload_that_replaces_the_key_the_echoes_are_signed_with_the_new_one(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The second step of a key rotation: key 1 removed, key 2 signs. The ping link was
    # built with key 1 and has signed this second's echo with it (a cached payload).
    config = make_config(("alpha", "beta"), ping=(ROUTER,))
    rotated = AuthKeys(outbound=2, keys=(AuthKey(index=2, method=AuthMethod.SHA256, key=b"new"),))
    link = await ping_link()
    sent_requests(link)

    async def without_socket(inbound: object, *, task_status: Any) -> None:
        task_status.started()  # no raw socket: the test sends the echoes (ping_once)
        await trio.sleep_forever()

    link.run = without_socket  # type: ignore[method-assign,assignment]
    async with trio.open_nursery() as nursery:
        daemon, running = await start_daemon(nursery, config, link, tmp_path)
        new = dataclasses.replace(running, config=dataclasses.replace(config, auth=rotated))
        assert await daemon.reload(lambda: new)
        [(request, _)] = sent_requests(link)
        dgram = link.accept(ipv4_header() + as_reply(request), ROUTER)
        assert dgram is not None
        assert daemon.comms.handle(dgram, trio.current_time())  # the reply verifies
        [router] = [n for n in daemon.engine.view().nodes if n.name == ROUTER]
        assert router.status is NodeStatus.PING
        nursery.cancel_scope.cancel()
    assert decode(request[8:], Signer(rotated)).message.get("src") == ROUTER
    with pytest.raises(WireError, match="bad-auth-index"):
        decode(request[8:], SIGNER)  # index 2: the removed key 1 signs nothing any more


class EchoingSocket:
    """Where a ping link's sends go in a daemon test: each echo request is answered at
    once, the reply going the way :meth:`PingLink.run` passes one on (accept, inbound)."""

    def __init__(self, link: PingLink, inbound: trio.MemorySendChannel[Datagram]) -> None:
        self.link = link
        self.inbound = inbound
        self.times: list[float] = []

    def sendto(self, data: bytes, address: tuple[Any, ...]) -> int:
        self.times.append(trio.current_time())
        dgram = self.link.accept(ipv4_header() + as_reply(data), ROUTER)
        assert dgram is not None
        self.inbound.send_nowait(dgram)
        return len(data)


async def test_after_a_reload_that_shortens_keepalive_and_deadping_the_echoes_keep_up(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # keepalive 2 s -> 0.25 s and deadping 10 s -> 1 s, half a second after an echo.
    # Paced by the old keepalive, the link would send its next echo with the first status
    # 0.75 x 2 s after the last one, at 7.5: the ping node would be dead at 7.0.
    config = make_config(("alpha", "beta"), ping=(ROUTER,), keepalive=2.0, deadtime=10.0)
    faster = make_config(keepalive=0.25, deadtime=2.0, deadping=1.0).timing
    link = await ping_link(interval=2.0)
    sockets: list[EchoingSocket] = []

    async def without_socket(
        inbound: trio.MemorySendChannel[Datagram], *, task_status: Any
    ) -> None:
        task_status.started()  # no raw socket: EchoingSocket answers every echo at once
        sockets.append(EchoingSocket(link, inbound))
        await link._send_loop(sockets[0])  # type: ignore[arg-type]

    link.run = without_socket  # type: ignore[method-assign,assignment]
    async with trio.open_nursery() as nursery:
        daemon, running = await start_daemon(nursery, config, link, tmp_path)
        tx, events = trio.open_memory_channel[object](math.inf)
        daemon.comms.add_subscriber(tx)
        await trio.sleep_until(6.5)
        assert sockets[0].times == [0.0, 2.0, 4.0, 6.0]  # one echo per status
        new = dataclasses.replace(running, config=dataclasses.replace(config, timing=faster))
        autojump_clock.autojump_threshold = math.inf  # no virtual time for its threads
        assert await daemon.reload(lambda: new)
        autojump_clock.autojump_threshold = 0
        await trio.sleep_until(16.5)
        [router] = [n for n in daemon.engine.view().nodes if n.name == ROUTER]
        nursery.cancel_scope.cancel()
    assert router.status is NodeStatus.PING
    tx.close()  # the daemon's last events are in
    changes = [e async for e in events if isinstance(e, NodeStatusChanged) and e.node == ROUTER]
    assert changes == []  # ping since the first echo, at 0: never declared dead
    after = [t for t in sockets[0].times if 6.5 <= t < 16.5]  # (at 16.5: cancelled or not)
    assert after[0] == 6.5  # with the status the reload sends at once
    assert len(after) == 40  # then with every status, every 0.25 s
    assert max(b - a for a, b in itertools.pairwise(after)) == pytest.approx(0.25)


def reply_packet(
    payload: bytes, *, ident: int = IDENT, kind: int = ICMP_ECHO_REPLY, seq: int = 0
) -> bytes:
    request = echo_request(ident, seq, payload)
    unsigned = bytes([kind]) + request[1:2] + b"\0\0" + request[4:]
    return (
        ipv4_header() + unsigned[:2] + struct.pack("!H", internet_checksum(unsigned)) + unsigned[4:]
    )


@pytest.mark.parametrize(
    ("packet", "source", "counter"),
    [
        (reply_packet(payload_for(ROUTER), ident=IDENT + 1), ROUTER, "ignored"),
        (reply_packet(payload_for(ROUTER), kind=ICMP_ECHO_REQUEST), ROUTER, "ignored"),
        (reply_packet(payload_for(ROUTER)), "198.51.100.99", "ignored"),
        (reply_packet(payload_for(ROUTER), seq=7), ROUTER, "ignored"),
        (reply_packet(payload_for("198.51.100.1")), ROUTER, "ignored"),
        (reply_packet(payload_for(ROUTER, info="ping_group")), ROUTER, "ignored"),
        (
            reply_packet(payload_for(ROUTER).replace(b"auth=1 ", b"auth=1 0")),
            ROUTER,
            "ignored",
        ),
        (reply_packet(b"hello from ping(8)"), ROUTER, "ignored"),
        (reply_packet(payload_for(ROUTER))[:30], ROUTER, "receive_errors"),
        (ipv4_header() + b"\0" * 3, ROUTER, "receive_errors"),
    ],
    ids=[
        "another-id",
        "an-echo-request",
        "another-host",
        "a-sequence-never-sent",
        "another-ping-node",
        "wrong-info",
        "bad-signature",
        "not-a-message",
        "truncated",
        "shorter-than-icmp",
    ],
)
async def test_anything_but_the_echo_of_what_we_sent_is_dropped_and_counted(
    packet: bytes, source: str, counter: str
) -> None:
    link = await ping_link()
    [(request, _)] = sent_requests(link)
    assert request[8:] == payload_for(ROUTER)  # what a faithful echo would carry back
    assert link.accept(packet, source) is None
    stats = link.statistics()
    assert getattr(stats, counter) == 1
    assert stats.packets_received == 0


async def test_a_replayed_reply_is_passed_on_once() -> None:
    link = await ping_link()
    [(request, _)] = sent_requests(link)
    reply = ipv4_header() + as_reply(request)
    assert link.accept(reply, ROUTER) is not None
    assert link.accept(reply, ROUTER) is None
    assert (link.statistics().packets_received, link.statistics().ignored) == (1, 1)


async def test_a_ping_group_passes_on_one_answer_per_echo() -> None:
    link = await ping_link("routers", ("198.51.100.253", ROUTER), info="ping_group")
    [(request, _), _] = sent_requests(link)
    reply = ipv4_header() + as_reply(request)
    assert link.accept(reply, "198.51.100.253") is not None
    assert link.accept(reply, ROUTER) is None
    assert (link.statistics().packets_received, link.statistics().ignored) == (1, 1)
    [(request, _), _] = sent_requests(link)
    assert link.accept(ipv4_header() + as_reply(request), ROUTER) is not None


async def test_cluster_messages_handed_to_a_ping_link_go_nowhere() -> None:
    link = await ping_link()
    assert link.try_send_nowait(b">>>\nt=status\n<<<\n")
    await link.send(b">>>\nt=status\n<<<\n")
    assert link.statistics().packets_sent == 0


async def test_without_cap_net_raw_the_link_fails_to_open_naming_the_directive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> socket.socket:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("pulse.transport.ping.socket.socket", refuse)
    tx, _rx = trio.open_memory_channel[Datagram](1)
    link = PingLink(name="routers", hosts=(ROUTER,), info="ping_group", interval=1, signer=SIGNER)
    with pytest.raises(TransportError) as caught:
        await link.run(tx)
    assert str(caught.value) == (
        f"ping_group routers {ROUTER}: cannot open a raw ICMP socket: permission denied "
        "(EPERM: Operation not permitted); ping nodes need root or CAP_NET_RAW"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"hosts": ()}, "no host"), ({"interval": 0}, "positive")],
)
def test_a_ping_link_needs_a_host_and_an_interval(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"name": "r", "hosts": ("r",), "info": "ping", "interval": 1.0}
    with pytest.raises(ValueError, match=message):
        PingLink(signer=SIGNER, **{**args, **kwargs})


class TimedSocket(CapturingSocket):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def sendto(self, data: bytes, address: tuple[Any, ...]) -> int:
        self.times.append(trio.current_time())
        return super().sendto(data, address)


async def test_echoes_ride_on_outgoing_statuses_and_the_timer_only_fills_gaps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    link = await ping_link()  # interval 1 s
    sock = TimedSocket()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link._send_loop, sock)
        for k in range(5):  # our status heartbeat goes out at 0.9, 1.9, ... 4.9
            await trio.sleep_until(0.9 + k)
            assert link.try_send_nowait(b">>>\nt=status\n<<<\n")
            await trio.sleep_until(1.2 + k)  # an ACK 0.3 s later takes no echo along
            assert link.try_send_nowait(b">>>\nt=NS_ackmsg\n<<<\n")
        await trio.sleep_until(10.0)  # no more statuses: the link's own timer, every 1.25 s
        nursery.cancel_scope.cancel()
    assert sock.times == pytest.approx([0.0, 0.9, 1.9, 2.9, 3.9, 4.9, 6.15, 7.4, 8.65, 9.9])
    seqs = [struct.unpack("!H", packet[6:8])[0] for packet, _ in sock.sent]
    assert seqs == list(range(10))


async def test_from_any_phase_the_echoes_lock_onto_the_statuses_within_a_few_rounds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    link = await ping_link()
    sock = TimedSocket()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link._send_loop, sock)
        for k in range(8):  # statuses at 0.6, 1.6, ...: at first too soon after an echo
            await trio.sleep_until(0.6 + k)
            link.try_send_nowait(b">>>\nt=status\n<<<\n")
        nursery.cancel_scope.cancel()
    assert sock.times == pytest.approx([0.0, 1.25, 2.5, 3.6, 4.6, 5.6, 6.6, 7.6])


async def test_a_new_interval_moves_the_sleeping_fallback_timer_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    link = await ping_link(interval=2.0)
    sock = TimedSocket()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link._send_loop, sock)
        await trio.sleep_until(1.0)  # the timer sleeps until 2.5 (1.25 x 2 s)
        link.retime(0.5)  # 1.25 x 0.5 s after the echo at 0 has passed: one now
        await trio.sleep_until(2.5)
        link.retime(2.0)  # longer again: 1.25 x 2 s after the last echo (at 2.25)
        await trio.sleep_until(8.0)
        nursery.cancel_scope.cancel()
    assert sock.times == pytest.approx([0.0, 1.0, 1.625, 2.25, 4.75, 7.25])
