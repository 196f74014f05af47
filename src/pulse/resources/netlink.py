"""A small rtnetlink client: the six requests the floating-IP agent needs.

The agent dumps links, addresses and routes, adds and deletes an address and sets
a link up. pyroute2 did that before, but ``import pyroute2`` alone costs a node
8-12 MiB of resident memory (it brings asyncio, unittest.mock, sqlite3 and some
240 modules), and its sockets block, so every call hopped to a worker thread,
also on the failover path. This module does the same with the standard library,
in two halves:

* the codec, pure and byte-exact. The ``*_request`` functions each build one
  request: an ``nlmsghdr``, the family header (``ifinfomsg``, ``ifaddrmsg`` or
  ``rtmsg``), then ``rtattr``\\ s aligned to 4 bytes. :class:`Exchange` takes
  the kernel's datagrams for one request and knows when it is answered: a dump
  ends with ``NLMSG_DONE``; a change is acknowledged by an ``NLMSG_ERROR`` with
  error 0, or refused with ``-errno``. :func:`decode_link`,
  :func:`decode_address` and :func:`decode_route` read the records of a dump;
* the I/O, :class:`Rtnetlink`: one non-blocking ``NETLINK_ROUTE`` socket per
  operation, on trio. The kernel handles a request inside ``send`` (for a dump,
  it also queues the first part), so the answer is usually there at once;
  otherwise the task waits in ``trio.lowlevel.wait_readable``, never in a
  thread, and for at most ``timeout`` seconds.

Every failure is an :class:`OSError`. :class:`NetlinkError` means the kernel
said no; it carries ``errno``, ``strerror`` and the kernel's own explanation
when it gives one. :class:`MalformedReply` (``EBADMSG``) means the answer could
not be parsed. :class:`TimeoutError` (``ETIMEDOUT``) means no answer came in
time. Anything else is what the socket itself raised.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import trio

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

TIMEOUT = 5.0  # seconds for one request, a whole dump included
RECV_SIZE = 1 << 16  # a dump datagram is at most 32 KiB; MSG_TRUNC tells if not
DUMP_ATTEMPTS = 3  # a dump interrupted by concurrent changes is asked again

# Values from linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h and linux/if_link.h.
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x01
NLM_F_ACK = 0x04
NLM_F_DUMP_INTR = 0x10  # in a dump: the kernel's tables changed while it ran
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_CAPPED = 0x100  # in an error: the echoed request was cut to its header
NLM_F_ACK_TLVS = 0x200  # in an error: extended-ack attributes follow the echo

RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_GETROUTE = 26

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3  # leave the counters out of link dumps

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_TABLE = 15

NLMSGERR_ATTR_MSG = 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
IFF_UP = 0x1

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # errors echo only the request's header
NETLINK_EXT_ACK = 11  # errors carry the kernel's explanation

# The kernel's structs, in native byte order as it writes them.
NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, port id
IFINFOMSG = struct.Struct("=BxHiII")  # family, (pad), type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol,
#                                      scope, type, flags
RTATTR = struct.Struct("=HH")  # len (header included, padding not), type
U32 = struct.Struct("=I")
ERRNO = struct.Struct("=i")


class NetlinkError(OSError):
    """The kernel refused a request.

    ``errno`` and ``strerror`` are those of any OSError; ``detail`` is the
    kernel's extended-ack message ("" if it sent none), also shown in
    ``strerror`` in parentheses.
    """

    def __init__(self, code: int, detail: str = "") -> None:
        reason = os.strerror(code)
        super().__init__(code, f"{reason} ({detail})" if detail else reason)
        self.detail = detail


class MalformedReply(OSError):
    """The kernel's answer cannot be parsed (truncated or garbage)."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.EBADMSG, f"malformed netlink reply: {what}")


# --------------------------------------------------------------------------- codec


def align(size: int) -> int:
    """Round up to netlink's 4-byte alignment (NLMSG_ALIGN, RTA_ALIGN)."""
    return (size + 3) & ~3


def attribute(kind: int, value: bytes) -> bytes:
    """One ``rtattr``: length, type, value, zero padding to 4 bytes."""
    size = RTATTR.size + len(value)
    return RTATTR.pack(size, kind) + value + bytes(align(size) - size)


def _request(kind: int, flags: int, seq: int, header: bytes, *attrs: bytes) -> bytes:
    body = header + b"".join(attrs)
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def family_of(address: Address) -> int:
    """AF_INET or AF_INET6."""
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def link_dump_request(seq: int) -> bytes:
    """Every link (RTM_GETLINK dump), without the counters."""
    return _request(
        RTM_GETLINK,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0),
        attribute(IFLA_EXT_MASK, U32.pack(RTEXT_FILTER_SKIP_STATS)),
    )


def address_dump_request(seq: int, family: int) -> bytes:
    """Every address of one family (RTM_GETADDR dump)."""
    return _request(
        RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, IFADDRMSG.pack(family, 0, 0, 0, 0)
    )


def route_dump_request(seq: int, family: int) -> bytes:
    """Every route of one family, all tables (RTM_GETROUTE dump)."""
    return _request(
        RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    )


def address_add_request(
    seq: int,
    *,
    index: int,
    address: Address,
    prefixlen: int,
    broadcast: ipaddress.IPv4Address | None = None,
    label: str | None = None,
    flags: int = 0,
) -> bytes:
    """Add ``address/prefixlen`` to link ``index`` (RTM_NEWADDR, create, exclusive).

    IFA_LOCAL and IFA_ADDRESS both carry the address, as ``ip addr add`` sends
    it; ``flags`` (``IFA_F_*``, one byte) go in the header, scope is global.
    """
    if not 0 <= flags <= 0xFF:
        raise ValueError(f"address flags {flags:#x} do not fit ifa_flags")
    packed = address.packed
    attrs = [attribute(IFA_LOCAL, packed), attribute(IFA_ADDRESS, packed)]
    if broadcast is not None:
        attrs.append(attribute(IFA_BROADCAST, broadcast.packed))
    if label is not None:
        attrs.append(attribute(IFA_LABEL, label.encode() + b"\0"))
    return _request(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
        IFADDRMSG.pack(family_of(address), prefixlen, flags, 0, index),
        *attrs,
    )


def address_delete_request(seq: int, *, index: int, address: Address, prefixlen: int) -> bytes:
    """Delete ``address/prefixlen`` from link ``index`` (RTM_DELADDR)."""
    packed = address.packed
    return _request(
        RTM_DELADDR,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        IFADDRMSG.pack(family_of(address), prefixlen, 0, 0, index),
        attribute(IFA_LOCAL, packed),
        attribute(IFA_ADDRESS, packed),
    )


def link_up_request(seq: int, index: int) -> bytes:
    """Set link ``index`` up (RTM_NEWLINK changing only IFF_UP, as ``ip link set up``)."""
    return _request(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP),
    )


@dataclass(frozen=True, slots=True)
class Message:
    """One netlink message; ``body`` is everything after its ``nlmsghdr``."""

    type: int
    flags: int
    seq: int
    port: int
    body: bytes


def split_messages(datagram: bytes) -> list[Message]:
    """The messages of one datagram; MalformedReply if a length does not fit."""
    messages = []
    offset = 0
    while offset < len(datagram):
        left = len(datagram) - offset
        if left < NLMSGHDR.size:
            raise MalformedReply(f"{left} stray bytes after the last message")
        size, kind, flags, seq, port = NLMSGHDR.unpack_from(datagram, offset)
        if not NLMSGHDR.size <= size <= left:
            raise MalformedReply(f"message length {size} with {left} bytes left")
        body = datagram[offset + NLMSGHDR.size : offset + size]
        messages.append(Message(kind, flags, seq, port, body))
        offset += align(size)
    return messages


def parse_attributes(data: bytes) -> dict[int, bytes]:
    """The ``rtattr``\\ s of one record by type (the first of each type counts)."""
    attrs: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        left = len(data) - offset
        if left < RTATTR.size:
            raise MalformedReply(f"{left} stray bytes after the last attribute")
        size, kind = RTATTR.unpack_from(data, offset)
        if not RTATTR.size <= size <= left:
            raise MalformedReply(f"attribute length {size} with {left} bytes left")
        attrs.setdefault(kind & NLA_TYPE_MASK, data[offset + RTATTR.size : offset + size])
        offset += align(size)
    return attrs


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def _extack_message(msg: Message) -> str:
    """The kernel's explanation in an error, if it sent one (NETLINK_EXT_ACK)."""
    body = msg.body
    if not msg.flags & NLM_F_ACK_TLVS or len(body) < ERRNO.size + NLMSGHDR.size:
        return ""
    (echoed,) = U32.unpack_from(body, ERRNO.size)
    start = ERRNO.size + (NLMSGHDR.size if msg.flags & NLM_F_CAPPED else align(echoed))
    try:
        attrs = parse_attributes(body[start:])
    except MalformedReply:  # the errno alone still says what happened
        return ""
    return _text(attrs.get(NLMSGERR_ATTR_MSG, b""))


def decode_error(msg: Message) -> NetlinkError | None:
    """An NLMSG_ERROR: None for an acknowledgement (error 0), else the refusal."""
    if len(msg.body) < ERRNO.size:
        raise MalformedReply(f"error message of {len(msg.body)} bytes")
    (code,) = ERRNO.unpack_from(msg.body)
    if code > 0:
        raise MalformedReply(f"error code {code} is not a negative errno")
    return NetlinkError(-code, _extack_message(msg)) if code else None


class Exchange:
    """The answer to one request, assembled from the kernel's datagrams.

    :meth:`feed` each datagram until :attr:`done`; :attr:`records` then holds a
    dump's messages (nothing for an acknowledged change), and
    :attr:`interrupted` says whether the kernel flagged the dump as
    inconsistent. Messages for another sequence number, and anything after
    the end, are ignored. A refusal raises :class:`NetlinkError`.
    """

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.records: list[Message] = []
        self.done = False
        self.interrupted = False

    def feed(self, datagram: bytes) -> None:
        for msg in split_messages(datagram):
            if msg.seq != self.seq or self.done:
                continue
            if msg.flags & NLM_F_DUMP_INTR:
                self.interrupted = True
            if msg.type == NLMSG_ERROR:
                refusal = decode_error(msg)
                if refusal is not None:
                    raise refusal
                self.done = True
            elif msg.type == NLMSG_DONE:
                # Since Linux 4.x the end of a dump carries the dump's own errno.
                if len(msg.body) >= ERRNO.size and (code := ERRNO.unpack_from(msg.body)[0]) < 0:
                    raise NetlinkError(-code, _extack_message(msg))
                self.done = True
            elif msg.type == NLMSG_OVERRUN:
                raise MalformedReply("the kernel reports an overrun")
            elif msg.type != NLMSG_NOOP:
                self.records.append(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """One network interface, as much as the agent needs of it."""

    index: int
    name: str
    type: int  # ARPHRD_*
    flags: int  # IFF_*
    address: bytes  # the hardware address (IFLA_ADDRESS), b"" if it has none


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressRecord:
    """One configured address."""

    index: int
    prefixlen: int
    address: Address | None  # IFA_LOCAL, else IFA_ADDRESS (a peer address has both)
    label: str | None  # IPv4 only


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteRecord:
    """One route."""

    family: int
    dst: Address | None  # None: no RTA_DST (a default route)
    dst_len: int
    oif: int | None
    gateway: Address | None
    table: int  # RTA_TABLE, else rtm_table (which holds only 8 bits)
    type: int  # RTN_*
    priority: int  # the metric, 0 if none


def _fixed(msg: Message, layout: struct.Struct, what: str) -> tuple[int, ...]:
    if len(msg.body) < layout.size:
        raise MalformedReply(f"{what} of {len(msg.body)} bytes")
    return layout.unpack_from(msg.body)


def _ip(value: bytes | None) -> Address | None:
    if value is not None and len(value) in (4, 16):
        return ipaddress.ip_address(value)
    return None


def _u32(value: bytes | None) -> int | None:
    if value is None:
        return None
    if len(value) != U32.size:
        raise MalformedReply(f"a 32-bit attribute of {len(value)} bytes")
    return int(U32.unpack(value)[0])


def decode_link(msg: Message) -> Link:
    """An RTM_NEWLINK record."""
    _, kind, index, flags, _ = _fixed(msg, IFINFOMSG, "ifinfomsg")
    attrs = parse_attributes(msg.body[IFINFOMSG.size :])
    return Link(
        index=index,
        name=_text(attrs.get(IFLA_IFNAME, b"")),
        type=kind,
        flags=flags,
        address=attrs.get(IFLA_ADDRESS, b""),
    )


def decode_address(msg: Message) -> AddressRecord:
    """An RTM_NEWADDR record."""
    _, prefixlen, _, _, index = _fixed(msg, IFADDRMSG, "ifaddrmsg")
    attrs = parse_attributes(msg.body[IFADDRMSG.size :])
    label = attrs.get(IFA_LABEL)
    return AddressRecord(
        index=index,
        prefixlen=prefixlen,
        address=_ip(attrs.get(IFA_LOCAL)) or _ip(attrs.get(IFA_ADDRESS)),
        label=_text(label) if label is not None else None,
    )


def decode_route(msg: Message) -> RouteRecord:
    """An RTM_NEWROUTE record."""
    family, dst_len, _, _, table, _, _, kind, _ = _fixed(msg, RTMSG, "rtmsg")
    attrs = parse_attributes(msg.body[RTMSG.size :])
    return RouteRecord(
        family=family,
        dst=_ip(attrs.get(RTA_DST)),
        dst_len=dst_len,
        oif=_u32(attrs.get(RTA_OIF)),
        gateway=_ip(attrs.get(RTA_GATEWAY)),
        table=_u32(attrs.get(RTA_TABLE)) or table,
        type=kind,
        priority=_u32(attrs.get(RTA_PRIORITY)) or 0,
    )


# --------------------------------------------------------------------------- I/O


class Rtnetlink:
    """One non-blocking ``NETLINK_ROUTE`` socket, for the requests of one operation.

    ::

        with Rtnetlink() as nl:
            links = await nl.links()
            await nl.change(partial(link_up_request, index=links[1].index))

    Requests go one at a time, each with the next sequence number; only the
    kernel's messages with that number count. Each must be answered within
    ``timeout`` seconds, a whole dump included, else :class:`TimeoutError`.
    One task at a time.
    """

    def __init__(self, *, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._seq = 0
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            sock.setblocking(False)
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                with suppress(OSError):  # older kernels: errors without explanations
                    sock.setsockopt(SOL_NETLINK, option, 1)
            sock.bind((0, 0))  # the kernel picks our port id
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnetlink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _ask(self, build: Callable[[int], bytes]) -> Exchange:
        self._seq += 1
        exchange = Exchange(self._seq)
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        with trio.move_on_after(self.timeout) as scope:
            self._sock.send(build(self._seq))
            while not exchange.done:
                try:
                    data, _, flags, sender = self._sock.recvmsg(RECV_SIZE)
                except BlockingIOError:
                    waited = True
                    await trio.lowlevel.wait_readable(self._sock)
                    continue
                if flags & socket.MSG_TRUNC:
                    raise MalformedReply(f"a datagram longer than {RECV_SIZE} bytes")
                if sender[0] == 0:  # from the kernel, not from another process
                    exchange.feed(data)
        if scope.cancelled_caught:
            raise TimeoutError(
                errno.ETIMEDOUT, f"no netlink answer from the kernel within {self.timeout:g} s"
            )
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return exchange

    async def _dump(self, build: Callable[[int], bytes]) -> list[Message]:
        for _ in range(DUMP_ATTEMPTS):
            exchange = await self._ask(build)
            if not exchange.interrupted:
                return exchange.records
        raise NetlinkError(errno.EINTR, f"dump interrupted by changes {DUMP_ATTEMPTS} times")

    async def links(self) -> list[Link]:
        records = await self._dump(link_dump_request)
        return [decode_link(m) for m in records if m.type == RTM_NEWLINK]

    async def addresses(self, family: int) -> list[AddressRecord]:
        records = await self._dump(lambda seq: address_dump_request(seq, family))
        return [decode_address(m) for m in records if m.type == RTM_NEWADDR]

    async def routes(self, family: int) -> list[RouteRecord]:
        records = await self._dump(lambda seq: route_dump_request(seq, family))
        return [decode_route(m) for m in records if m.type == RTM_NEWROUTE]

    async def change(self, request: Callable[[int], bytes]) -> None:
        """Make one change: ``request(seq)`` builds it, e.g.
        ``functools.partial(link_up_request, index=2)``. Returns once the kernel has
        acknowledged it; a refusal is :class:`NetlinkError` (EEXIST for an address
        already there, EADDRNOTAVAIL for one to delete that is not).
        """
        await self._ask(request)
