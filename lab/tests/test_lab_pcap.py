"""The classic-pcap reader yields exactly the UDP datagrams of a capture."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pulse_lab.pcap import PcapError, UdpDatagram, iter_udp, read_udp

CAPTURES = Path(__file__).resolve().parents[2] / "tests" / "data" / "captures"


def ipv4(
    payload: bytes, *, proto: int = 17, frag: int = 0, src: bytes = bytes([198, 51, 100, 1])
) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        frag,
        64,
        proto,
        0,
        src,
        bytes([198, 51, 100, 255]),
    )
    return header + payload


def udp(payload: bytes, sport: int = 40000, dport: int = 694) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ether(ip: bytes, ethertype: int = 0x0800) -> bytes:
    return b"\xff" * 6 + b"\x02" * 6 + struct.pack("!H", ethertype) + ip


def pcap(
    frames: list[bytes | tuple[bytes, int]],
    *,
    endian: str = "<",
    magic: int = 0xA1B2C3D4,
    linktype: int = 1,
) -> bytes:
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, item in enumerate(frames):
        frame, orig = item if isinstance(item, tuple) else (item, len(item))
        out += struct.pack(endian + "IIII", 1_700_000_000 + i, 500_000, len(frame), orig)
        out += frame
    return out


def test_the_heartbeat_captures_hold_only_broadcast_heartbeat_datagrams() -> None:
    counts = {"sha1": 82, "md5": 68, "crc": 66}
    for method, count in counts.items():
        datagrams = read_udp(CAPTURES / f"hb-{method}.pcap")
        assert len(datagrams) == count
        assert {d.dport for d in datagrams} == {694}
        assert {d.dst for d in datagrams} == {"192.0.2.255"}
        assert all(d.payload.startswith(b"###\n") for d in datagrams)
        times = [d.timestamp for d in datagrams]
        assert times == sorted(times)


def test_udp_datagram_unpacks_as_timestamp_source_destination_payload() -> None:
    (datagram,) = iter_udp(pcap([ether(ipv4(udp(b"hello")))]))
    timestamp, src, dst, payload = datagram
    assert timestamp == 1_700_000_000.5
    assert (src, dst, payload) == ("198.51.100.1", "198.51.100.255", b"hello")
    assert (datagram.sport, datagram.dport) == (40000, 694)


def test_non_udp_fragments_and_snapped_frames_are_skipped() -> None:
    frames: list[bytes | tuple[bytes, int]] = [
        ether(b"\x00" * 28, ethertype=0x0806),  # ARP
        ether(ipv4(b"\x08\x00" + b"\x00" * 6, proto=1)),  # ICMP
        ether(ipv4(udp(b"first-fragment"), frag=0x2000)),  # more fragments
        (ether(ipv4(udp(b"cut short")))[:-3], 100),  # incl_len < orig_len
        ether(ipv4(udp(b"kept"))),
        b"\x00" * 5,  # runt frame
    ]
    assert [d.payload for d in iter_udp(pcap(frames))] == [b"kept"]


def test_vlan_tagged_frames_are_read() -> None:
    tagged = b"\xff" * 6 + b"\x02" * 6 + b"\x81\x00\x00\x05\x08\x00" + ipv4(udp(b"vlan"))
    assert [d.payload for d in iter_udp(pcap([tagged]))] == [b"vlan"]


def test_ethernet_padding_after_the_ip_packet_is_ignored() -> None:
    frame = ether(ipv4(udp(b"x"))) + b"\0" * 20
    assert [d.payload for d in iter_udp(pcap([frame]))] == [b"x"]


def test_big_endian_and_nanosecond_files_are_read() -> None:
    data = pcap([ether(ipv4(udp(b"be")))], endian=">", magic=0xA1B23C4D)
    (datagram,) = iter_udp(data)
    assert datagram.payload == b"be"
    assert datagram.timestamp == pytest.approx(1_700_000_000.0005)


def test_linux_cooked_and_raw_ip_captures_are_read() -> None:
    sll = b"\x00\x00\x00\x01\x00\x06" + b"\x02" * 8 + b"\x08\x00" + ipv4(udp(b"any"))
    assert [d.payload for d in iter_udp(pcap([sll], linktype=113))] == [b"any"]
    assert [d.payload for d in iter_udp(pcap([ipv4(udp(b"raw"))], linktype=101))] == [b"raw"]


def test_not_a_pcap_file_is_refused() -> None:
    with pytest.raises(PcapError):
        list(iter_udp(b"\x0a\x0d\x0d\x0a" + b"\0" * 40))  # pcapng
    with pytest.raises(PcapError):
        list(iter_udp(b"short"))


def test_truncated_record_is_refused() -> None:
    data = pcap([ether(ipv4(udp(b"complete"))), ether(ipv4(udp(b"truncated")))])
    with pytest.raises(PcapError):
        list(iter_udp(data[:-4]))
    with pytest.raises(PcapError):
        list(iter_udp(data + b"\0" * 7))


def test_datagrams_are_frozen_values() -> None:
    one = UdpDatagram(timestamp=1.0, src="a", dst="b", sport=1, dport=2, payload=b"")
    assert one == UdpDatagram(timestamp=1.0, src="a", dst="b", sport=1, dport=2, payload=b"")
