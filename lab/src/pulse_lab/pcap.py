"""A small reader for classic pcap files: the UDP datagrams in a capture.

Only what tests and benches need: the classic (not pcapng) file format in either byte
order, with microsecond or nanosecond timestamps; link types Ethernet (with at most one
802.1Q tag), Linux "cooked" capture (``tcpdump -i any``) and raw IPv4. Frames that are
not unfragmented IPv4/UDP, or that were truncated by the capture's snap length, are
skipped rather than reported: a capture of a cluster link also holds ARP, IGMP and the
like, which are of no interest here.

Reading a file is blocking I/O; call :func:`read_udp` through ``trio.to_thread`` from
async code, or parse bytes already in memory with :func:`iter_udp`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PcapError", "UdpDatagram", "iter_udp", "read_udp"]

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D

_LINKTYPE_ETHERNET = 1
_LINKTYPE_RAW = 101
_LINKTYPE_LINUX_SLL = 113
_LINKTYPE_IPV4 = 228

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN = 0x8100
_IPPROTO_UDP = 17


class PcapError(ValueError):
    """The file is not a classic pcap file, or its record structure is broken."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpDatagram:
    """One captured UDP datagram. ``timestamp`` is seconds since the epoch."""

    timestamp: float
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes

    def __iter__(self) -> Iterator[object]:
        """Unpack as ``(timestamp, src, dst, payload)``."""
        return iter((self.timestamp, self.src, self.dst, self.payload))


def read_udp(path: str | Path) -> list[UdpDatagram]:
    """Every UDP datagram in the pcap file at *path*, in capture order."""
    return list(iter_udp(Path(path).read_bytes()))


def iter_udp(data: bytes) -> Iterator[UdpDatagram]:
    """Yield the UDP datagrams of a classic pcap file held in memory."""
    if len(data) < 24:
        raise PcapError("file shorter than the 24-byte pcap header")
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic in (_MAGIC_US, _MAGIC_NS):
        endian = "<"
    else:
        (magic,) = struct.unpack_from(">I", data, 0)
        if magic not in (_MAGIC_US, _MAGIC_NS):
            raise PcapError(f"not a classic pcap file (magic {data[:4].hex()})")
        endian = ">"
    divisor = 1e9 if magic == _MAGIC_NS else 1e6
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    linktype &= 0x0FFFFFFF  # the upper bits may carry FCS information
    record = struct.Struct(endian + "IIII")
    off = 24
    while off < len(data):
        if off + 16 > len(data):
            raise PcapError(f"truncated record header at offset {off}")
        sec, frac, incl, orig = record.unpack_from(data, off)
        off += 16
        if off + incl > len(data):
            raise PcapError(f"truncated record at offset {off}")
        frame = data[off : off + incl]
        off += incl
        if incl < orig:
            continue  # cut by the snap length: the payload is incomplete
        ip = _ipv4_of(frame, linktype)
        if ip is None:
            continue
        datagram = _udp_of(ip, sec + frac / divisor)
        if datagram is not None:
            yield datagram


def _ipv4_of(frame: bytes, linktype: int) -> bytes | None:
    if linktype == _LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return None
        (ethertype,) = struct.unpack_from("!H", frame, 12)
        start = 14
        if ethertype == _ETHERTYPE_VLAN:
            if len(frame) < 18:
                return None
            (ethertype,) = struct.unpack_from("!H", frame, 16)
            start = 18
        return frame[start:] if ethertype == _ETHERTYPE_IPV4 else None
    if linktype == _LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            return None
        (protocol,) = struct.unpack_from("!H", frame, 14)
        return frame[16:] if protocol == _ETHERTYPE_IPV4 else None
    if linktype in (_LINKTYPE_RAW, _LINKTYPE_IPV4):
        return frame if frame[:1] and frame[0] >> 4 == 4 else None
    return None


def _udp_of(ip: bytes, timestamp: float) -> UdpDatagram | None:
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 0x0F) * 4
    (total,) = struct.unpack_from("!H", ip, 2)
    (flags_frag,) = struct.unpack_from("!H", ip, 6)
    if ihl < 20 or total < ihl or total > len(ip) or ip[9] != _IPPROTO_UDP:
        return None
    if flags_frag & 0x3FFF:  # more-fragments flag or a fragment offset
        return None
    udp = ip[ihl:total]
    if len(udp) < 8:
        return None
    sport, dport, length = struct.unpack_from("!HHH", udp, 0)
    if length < 8 or length > len(udp):
        return None
    return UdpDatagram(
        timestamp=timestamp,
        src=str(ipaddress.IPv4Address(ip[12:16])),
        dst=str(ipaddress.IPv4Address(ip[16:20])),
        sport=sport,
        dport=dport,
        payload=udp[8:length],
    )
