"""UDP links: ``bcast``, ``ucast`` and ``mcast``, as Heartbeat's HBcomm plugins open them.

Every link has two sockets (docs/heartbeat.md#transports):

* a **receive** socket bound to ``0.0.0.0:PORT`` (``GROUP:PORT`` for mcast) with
  ``SO_REUSEADDR`` and ``SO_REUSEPORT``, and ``SO_BINDTODEVICE(IF)`` so that a packet
  is attributed to the interface it really came in on, even when eth0 and eth1 share
  a port;
* an unbound **send** socket, also bound to the device, so a heartbeat for eth1 never
  leaves through eth0 because of the routing table. Receivers ignore the source port.

The broadcast address of a ``bcast`` interface is read with ``SIOCGIFBRDADDR`` on the
link's own socket before every send: it is one cheap ioctl, and it follows an address
that changes or only appears after start-up (DHCP, a cable plugged in late).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import logging
import socket
import struct
from typing import Any, Literal

import trio

from pulse.errors import TransportError

from ._link import (
    Counters,
    Datagram,
    LinkStatistics,
    Sink,
    describe_os_error,
    receive_datagrams,
    resolve_host,
)
from .sockfilter import DropCounts, echo_filter

#: Heartbeat's receive buffer is MAXMSG (256 KiB) but a UDP payload cannot exceed this.
MAX_UDP_PAYLOAD = 65535

DEFAULT_SEND_TIMEOUT = 1.0

# From <linux/sockios.h>
_SIOCGIFADDR = 0x8915
_SIOCGIFBRDADDR = 0x8919
_SIOCGIFNETMASK = 0x891B
_IFNAMSIZ = 16
_IPTOS_LOWDELAY = 0x10
_SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; Python's socket module does not name these
_SO_MEMINFO = 55
_SK_MEMINFO_DROPS = 8  # <linux/sock_diag.h>: the index of the drop count in SO_MEMINFO
BROADCAST_RECHECK = 5.0  # seconds between two looks at an interface's broadcast address

#: The receive buffer asked for (the kernel doubles it for its bookkeeping). A flood the
#: daemon keeps up with never fills it; it is there for the moments it is not scheduled:
#: 8 MiB hold about 1 s of 10,000 small packets/s, or about 60 ms of 65 KB datagrams at
#: 1,400/s (docs/hostile-input.md: with 2 MiB those pushed heartbeats out). Set with
#: SO_RCVBUFFORCE when we may (root), else SO_RCVBUF up to net.core.rmem_max.
RECEIVE_BUFFER = 4 << 20

_SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>

#: How many of our latest packets a link remembers to recognise them coming back. An
#: echo older than that (after a burst of retransmissions) goes on to the engine, which
#: drops it by its ``src``.
ECHO_MEMORY = 32


def _ifreq(interface: str) -> bytes:
    return struct.pack("256s", interface.encode()[: _IFNAMSIZ - 1])


def _ioctl_ipv4(fd: int, request: int, interface: str) -> ipaddress.IPv4Address:
    result = fcntl.ioctl(fd, request, _ifreq(interface))
    return ipaddress.IPv4Address(result[20:24])


def interface_broadcast(fd: int, interface: str) -> str:
    """The IPv4 broadcast address of ``interface``, asked through socket ``fd``.

    An address added without ``brd`` has broadcast 0.0.0.0; the broadcast is then
    derived from the address and netmask, as ``ip addr add … brd +`` would. Raises
    ``OSError`` (ENODEV: no such interface, EADDRNOTAVAIL: no IPv4 address).
    """
    brd = _ioctl_ipv4(fd, _SIOCGIFBRDADDR, interface)
    if int(brd) != 0:
        return str(brd)
    addr = _ioctl_ipv4(fd, _SIOCGIFADDR, interface)
    mask = _ioctl_ipv4(fd, _SIOCGIFNETMASK, interface)
    network = ipaddress.IPv4Network(f"{addr}/{mask}", strict=False)
    if network.prefixlen >= 31:
        raise OSError(errno.EADDRNOTAVAIL, f"{network} has no broadcast address")
    return str(network.broadcast_address)


def _open_error(interface: str, what: str, exc: OSError) -> TransportError:
    if exc.errno in (errno.ENODEV, errno.ENXIO):
        reason = f"interface {interface} does not exist"
    elif exc.errno in (errno.EPERM, errno.EACCES):
        reason = (
            f"permission denied ({describe_os_error(exc)}); binding to a device needs "
            "CAP_NET_RAW and a port below 1024 needs CAP_NET_BIND_SERVICE"
        )
    elif exc.errno == errno.EADDRINUSE:
        reason = (
            "address in use: another program holds the port without SO_REUSEPORT "
            "(a Heartbeat on this host?)"
        )
    else:
        reason = describe_os_error(exc)
    return TransportError(f"{what} on {interface}: {reason}")


def kernel_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped for *sock* (a full receive buffer); 0 if unknown."""
    try:
        info = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 4 * (_SK_MEMINFO_DROPS + 1))
    except OSError:
        return 0
    if len(info) < 4 * (_SK_MEMINFO_DROPS + 1):
        return 0
    return int(struct.unpack_from("=I", info, 4 * _SK_MEMINFO_DROPS)[0])


def attach_filter(sock: socket.socket, program: bytes) -> None:
    """``SO_ATTACH_FILTER`` (the kernel copies the program: the buffer may go)."""
    code = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def _grow_receive_buffer(sock: socket.socket, size: int) -> None:
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 2 * size:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:  # no CAP_NET_ADMIN: what net.core.rmem_max allows
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class UdpLink:
    """Common part of the three UDP media: sockets, receive loop, counted sends."""

    kind = "udp"
    classic_only = False

    def __init__(
        self, *, interface: str, port: int, send_timeout: float = DEFAULT_SEND_TIMEOUT
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"UDP port {port} out of range")
        self.name = interface
        self.interface = interface
        self.port = port
        self.send_timeout = send_timeout
        self._counters = Counters(interface)
        self._send_sock: trio.socket.SocketType | None = None
        self._send_raw: socket.socket | None = None  # the same socket, for try_send_nowait
        self._receiver: socket.socket | None = None
        # A broadcast (or looped multicast, or ucast to ourselves) comes back to our own
        # receive socket; dropping it here by its bytes spares the engine a wake-up.
        self._sent_recently: collections.deque[bytes] = collections.deque(maxlen=ECHO_MEMORY)
        self._sink: Sink | None = None
        self._filtered_sends = 0  # packets sent since an echo filter was attached
        self._echo_filter: tuple[ipaddress.IPv4Address, int] | None = None
        self._ack_local: bytes | None = None  # filter_acks: our name, lower case
        self._drop_counts: DropCounts | Literal[False] | None = None  # False: no eBPF

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def describe(self) -> str:
        return f"{self.kind} {self.interface} port {self.port}"

    @property
    def failing_since(self) -> float | None:
        """When sends started failing with the interface down (LinkStatistics)."""
        return self._counters.failing_since

    def attach_sink(self, sink: Sink | None) -> None:
        """Hand datagrams to *sink* from now on (None: back to the channel)."""
        self._sink = sink

    def filter_acks(self, local: bytes) -> None:
        """Let the kernel drop ACKs addressed to a node other than *local* (our name,
        lower case) from now on (:mod:`pulse.transport.sockfilter`)."""
        self._ack_local = local
        with contextlib.suppress(OSError):  # then the bytes check drops them
            self._attach_receive_filter(self._echo_filter)

    def _attach_receive_filter(self, echo: tuple[ipaddress.IPv4Address, int] | None) -> None:
        """Attach the program that drops our echoes and ACKs for other nodes, in eBPF
        so that it counts them; without eBPF (no CAP_BPF) the classic program drops
        echoes only, whose number the link knows (what it sent)."""
        receiver = self._receiver
        if receiver is None or (echo is None and self._ack_local is None):
            return
        if self._drop_counts is None:
            try:
                self._drop_counts = DropCounts()
            except OSError as exc:
                self._drop_counts = False
                self._counters.note(f"no eBPF receive filter ({exc})", level=logging.INFO)
        if self._drop_counts:
            try:
                self._drop_counts.attach(receiver, echo, self._ack_local)
                return
            except OSError as exc:
                self._drop_counts.close()
                self._drop_counts = False
                self._counters.note(f"{exc}; ACKs for other nodes are read and dropped")
        if echo is not None:
            attach_filter(receiver, echo_filter(*echo))

    def _current_sink(self) -> Sink | None:
        return self._sink

    def statistics(self) -> LinkStatistics:
        if self._receiver is not None:
            # The kernel counts what the filter drops as drops of the socket: take away
            # the eBPF program's own counts, or without it the echoes, which are what
            # we sent since it was attached, less what came back anyway.
            dropped = kernel_drops(self._receiver)
            if self._drop_counts:
                filtered_echoes, self._counters.acks_for_others = self._drop_counts.read()
                dropped -= filtered_echoes + self._counters.acks_for_others
            else:
                dropped -= max(0, self._filtered_sends - self._counters.echoes)
            self._counters.kernel_drops = max(0, dropped)
        return self._counters.snapshot()

    # ----------------------------------------------------------------- opening

    def _bind_to_device(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())

    def _receive_address(self) -> tuple[str, int]:
        return ("0.0.0.0", self.port)

    def _configure_receiver(self, sock: socket.socket) -> None:
        """Medium-specific options on the receive socket, after bind."""

    def _configure_sender(self, sock: socket.socket) -> None:
        """Medium-specific options on the send socket."""

    async def _resolve(self) -> None:
        """Resolve destinations once the sockets are open (may raise TransportError)."""

    def _open_receiver(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._bind_to_device(sock)
            sock.bind(self._receive_address())
            _grow_receive_buffer(sock, RECEIVE_BUFFER)
            self._configure_receiver(sock)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise _open_error(self.interface, f"cannot open {self.kind} receiver", exc) from exc
        return sock

    def _open_sender(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._bind_to_device(sock)
            self._configure_sender(sock)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise _open_error(self.interface, f"cannot open {self.kind} sender", exc) from exc
        return sock

    # ----------------------------------------------------------------- running

    async def run(
        self,
        inbound: trio.MemorySendChannel[Datagram],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with self._open_receiver() as receiver:
            self._receiver = receiver
            with contextlib.suppress(OSError):
                self._attach_receive_filter(None)
            raw = self._open_sender()
            sender = trio.socket.from_stdlib_socket(raw)
            with sender:
                await self._resolve()
                self._send_sock, self._send_raw = sender, raw
                try:
                    task_status.started()
                    await receive_datagrams(
                        receiver,
                        inbound,
                        self._counters,
                        self._accept,
                        max_size=MAX_UDP_PAYLOAD,
                        sink=self._current_sink,
                    )
                finally:
                    self._send_sock = self._send_raw = self._receiver = None
                    if self._drop_counts:
                        self._drop_counts.close()
                    self._drop_counts = None
                    self._echo_filter = None  # a new receiver needs it attached again

    def _accept(self, data: bytes, address: Any) -> Datagram | None:
        if data in self._sent_recently:
            self._counters.echoes += 1  # our own broadcast, back through the receive socket
            return None
        self._counters.received(len(data))
        return Datagram(link=self.name, data=data, peer=f"{address[0]}:{address[1]}")

    # ----------------------------------------------------------------- sending

    def _destinations(self, sock: trio.socket.SocketType) -> list[tuple[str, int]]:
        raise NotImplementedError

    def _forget_destinations(self) -> None:
        """A send failed: look the destinations up again next time (addresses change)."""

    def try_send_nowait(self, data: bytes) -> bool:
        raw, sock = self._send_raw, self._send_sock
        if raw is None or sock is None:
            return False
        try:
            destinations = self._destinations(sock)
        except OSError:
            return False  # send() counts it
        for i, destination in enumerate(destinations):
            try:
                raw.sendto(data, destination)  # non-blocking socket: never waits
            except BlockingIOError:
                if i == 0:
                    return False  # the buffer is full: queue it for send()
                self._counters.send_error(f"send to {destination[0]} would block; dropped")
                continue
            except OSError as exc:
                where = f"{destination[0]}:{destination[1]}"
                text = f"send to {where} failed: {describe_os_error(exc)}"
                self._counters.send_error(text, error=exc.errno)
                self._forget_destinations()
                continue
            self._counters.sent(len(data))
            if self._echo_filter is not None:
                self._filtered_sends += 1
        self._sent_recently.append(data)
        return True

    async def send(self, data: bytes) -> None:
        sock = self._send_sock
        if sock is None:
            self._counters.send_error("not open")
            await trio.lowlevel.checkpoint()
            return
        try:
            destinations = self._destinations(sock)
        except OSError as exc:
            self._counters.send_error(f"no destination: {describe_os_error(exc)}", error=exc.errno)
            await trio.lowlevel.checkpoint()
            return
        self._sent_recently.append(data)
        for destination in destinations:
            await self._send_one(sock, data, destination)

    async def _send_one(
        self, sock: trio.socket.SocketType, data: bytes, destination: tuple[str, int]
    ) -> None:
        where = f"{destination[0]}:{destination[1]}"
        try:
            with trio.move_on_after(self.send_timeout) as scope:
                await sock.sendto(data, destination)
        except OSError as exc:
            text = f"send to {where} failed: {describe_os_error(exc)}"
            self._counters.send_error(text, error=exc.errno)
            self._forget_destinations()
            return
        except trio.ClosedResourceError:
            self._counters.send_error(f"send to {where} failed: link closed")
            return
        if scope.cancelled_caught:
            self._counters.send_error(f"send to {where} timed out after {self.send_timeout}s")
        else:
            self._counters.sent(len(data))
            if self._echo_filter is not None:
                self._filtered_sends += 1


class BcastLink(UdpLink):
    """``bcast IF``: to the interface's broadcast address, ``SO_BROADCAST|SO_DONTROUTE``."""

    kind = "bcast"

    def _configure_sender(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE, 1)
        sock.bind(("0.0.0.0", 0))  # a port of its own now, for the echo filter

    _broadcast: str | None = None
    _broadcast_expires: float = 0.0

    def _destinations(self, sock: trio.socket.SocketType) -> list[tuple[str, int]]:
        # Looked up again every few seconds and after a failed send (three ioctls per
        # heartbeat were a fifth of an idle node's CPU). An interface without an IPv4
        # address yet is not an error at start-up: sends count as failures until then.
        now = trio.current_time()
        if self._broadcast is None or now >= self._broadcast_expires:
            self._broadcast = interface_broadcast(sock.fileno(), self.interface)
            self._broadcast_expires = now + BROADCAST_RECHECK
            self._filter_echoes(sock)
        return [(self._broadcast, self.port)]

    def _filter_echoes(self, sock: trio.socket.SocketType) -> None:
        """(Re)attach the echo filter for the interface's current address (it may
        change: DHCP); until it matches, echoes are dropped by their bytes."""
        receiver = self._receiver
        if receiver is None:
            return
        try:
            wanted = (
                _ioctl_ipv4(sock.fileno(), _SIOCGIFADDR, self.interface),
                int(sock.getsockname()[1]),
            )
            if wanted != self._echo_filter:
                self._attach_receive_filter(wanted)
                self._echo_filter = wanted
        except OSError:
            return  # no address yet, or no filters here: the bytes check stays

    def _forget_destinations(self) -> None:
        self._broadcast = None


class UcastLink(UdpLink):
    """``ucast IF PEER`` lines sharing an interface and port: one link, several peers."""

    kind = "ucast"

    def __init__(
        self,
        *,
        interface: str,
        port: int,
        peers: tuple[str, ...],
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        super().__init__(interface=interface, port=port, send_timeout=send_timeout)
        if not peers:
            raise ValueError("a ucast link needs at least one peer")
        self.peers = peers
        self._addresses: list[tuple[str, int]] = []

    def describe(self) -> str:
        return f"ucast {self.interface} port {self.port} to {', '.join(self.peers)}"

    def _configure_sender(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _IPTOS_LOWDELAY)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)

    async def _resolve(self) -> None:
        addresses: list[tuple[str, int]] = []
        for peer in self.peers:
            address = await _resolve_ipv4(peer)
            if (address, self.port) not in addresses:
                addresses.append((address, self.port))
        self._addresses = addresses

    def _destinations(self, sock: trio.socket.SocketType) -> list[tuple[str, int]]:
        return self._addresses


class McastLink(UdpLink):
    """``mcast IF GROUP PORT TTL LOOP``: joined on the interface, sent through it."""

    kind = "mcast"

    def __init__(
        self,
        *,
        interface: str,
        group: str,
        port: int,
        ttl: int = 1,
        loop: bool = False,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
    ) -> None:
        super().__init__(interface=interface, port=port, send_timeout=send_timeout)
        if not ipaddress.IPv4Address(group).is_multicast:
            raise ValueError(f"{group} is not an IPv4 multicast group")
        if not 0 <= ttl <= 255:
            raise ValueError(f"multicast TTL {ttl} out of range 0..255")
        self.group = group
        self.ttl = ttl
        self.loop = loop

    def describe(self) -> str:
        return f"mcast {self.interface} group {self.group} port {self.port} ttl {self.ttl}"

    def _ifindex(self) -> int:
        return socket.if_nametoindex(self.interface)

    def _mreqn(self, group: str) -> bytes:
        # struct ip_mreqn { in_addr multiaddr; in_addr address; int ifindex; }
        return struct.pack(
            "=4s4si", socket.inet_aton(group), socket.inet_aton("0.0.0.0"), self._ifindex()
        )

    def _receive_address(self) -> tuple[str, int]:
        # Bound to the group, so datagrams to other groups on the same port stay out.
        return (self.group, self.port)

    def _configure_receiver(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, self._mreqn(self.group))

    def _configure_sender(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, self._mreqn("0.0.0.0"))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, self.ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(self.loop))

    def _destinations(self, sock: trio.socket.SocketType) -> list[tuple[str, int]]:
        return [(self.group, self.port)]


async def _resolve_ipv4(host: str) -> str:
    """A ucast peer as Heartbeat takes it: an IPv4 address or a resolvable name."""
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    return str((await resolve_host(host, socket.AF_INET, "ucast peer"))[0])
