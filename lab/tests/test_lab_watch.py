"""pulse_lab.watch: packet fields of both encodings, tolerant reading, event lookup."""

from __future__ import annotations

from pathlib import Path

from pulse_lab.pcap import read_udp
from pulse_lab.watch import Event, event_to_json, first, last, packet_fields, read_events

CAPTURES = Path(__file__).resolve().parents[2] / "tests" / "data" / "captures"


def test_packet_fields_reads_type_and_source_of_heartbeat_netstring_captures() -> None:
    datagrams = read_udp(CAPTURES / "hb-sha1.pcap")
    fields = [packet_fields(d.payload) for d in datagrams]
    assert fields[0] == ("status", "n1")
    assert {src for _, src in fields} == {"n1", "n2"}
    assert all(mtype for mtype, _ in fields)


def test_packet_fields_reads_classic_packets_and_ignores_look_alike_fields() -> None:
    data = b">>>\nt=status\nst=active\nsrc=prime\nsrcuuid=x\nauth=1 ab\n<<<\n"
    assert packet_fields(data) == ("status", "prime")


def test_packet_fields_of_garbage_are_empty() -> None:
    assert packet_fields(b"\x00\x01 not a heartbeat packet") == ("", "")


def test_read_events_skips_a_half_written_line_and_sorts_by_time() -> None:
    later = Event(t=2.0, kind="addr+", what="198.51.100.100")
    earlier = Event(t=1.0, kind="neigh", what="198.51.100.100", detail="02:00:00:00:00:01")
    lines = [event_to_json(later), event_to_json(earlier), '{"t": 3.0, "kind": "ad']
    assert read_events(lines) == [earlier, later]


def test_first_and_last_find_the_matching_event_around_a_moment() -> None:
    events = [
        Event(t=1.0, kind="udp", what="prime", detail="status"),
        Event(t=1.5, kind="udp", what="calc", detail="status"),
        Event(t=2.0, kind="udp", what="prime", detail="status"),
        Event(t=2.5, kind="addr+", what="198.51.100.100"),
        Event(t=3.0, kind="udp", what="prime", detail="resource"),
    ]
    assert last(events, "udp", before=2.7, what="prime", detail="status") == events[2]
    assert first(events, "addr+", after=2.0, what="198.51.100.100") == events[3]
    assert first(events, "addr+", after=2.5) is None  # strictly after
    assert first(events, "udp", after=1.0, what="prime", before=1.9) is None
