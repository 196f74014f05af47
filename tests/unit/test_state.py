"""hb_generation and hb_uuid as Heartbeat keeps them (docs/heartbeat.md#identity-files)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pulse.protocol.identity import (
    PeerMark,
    format_generation,
    load_peer_marks,
    load_uuid,
    next_generation,
    random_uuid,
    save_peer_marks,
)


def test_missing_generation_file_starts_from_wall_clock_plus_one(tmp_path: Path) -> None:
    assert next_generation(tmp_path, now=1_700_000_000.7) == 1_700_000_001
    assert (tmp_path / "hb_generation").read_bytes() == b"     1700000001\n"


def test_generation_file_is_sixteen_bytes_right_aligned() -> None:
    assert format_generation(42) == b"             42\n"
    assert len(format_generation(1_700_000_000)) == 16


def test_each_start_increments_the_stored_generation(tmp_path: Path) -> None:
    (tmp_path / "hb_generation").write_bytes(format_generation(1234))
    assert next_generation(tmp_path, now=5.0) == 1235
    assert next_generation(tmp_path, now=5.0) == 1236
    assert (tmp_path / "hb_generation").read_bytes() == format_generation(1236)


def test_generation_written_by_heartbeat_without_padding_is_read(tmp_path: Path) -> None:
    (tmp_path / "hb_generation").write_bytes(b"77\n")
    assert next_generation(tmp_path, now=5.0) == 78


def test_unreadable_generation_restarts_from_time(tmp_path: Path) -> None:
    (tmp_path / "hb_generation").write_bytes(b"garbage\n")
    assert next_generation(tmp_path, now=99.0) == 100


def test_time_method_uses_the_clock_and_stores_nothing(tmp_path: Path) -> None:
    assert next_generation(tmp_path, "time", now=1_700_000_000.9) == 1_700_000_000
    assert not (tmp_path / "hb_generation").exists()


def test_unknown_generation_method_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hbgenmethod"):
        next_generation(tmp_path, "random", now=1.0)


def test_generation_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    next_generation(tmp_path, now=1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hb_generation"]


def test_uuid_is_created_once_and_then_stable(tmp_path: Path) -> None:
    first = load_uuid(tmp_path)
    assert len(first) == 16
    assert (tmp_path / "hb_uuid").read_bytes() == first
    assert load_uuid(tmp_path) == first


def test_a_new_uuid_is_a_random_version_4_uuid_as_uuid4_makes_it() -> None:
    made = [uuid.UUID(bytes=random_uuid()) for _ in range(64)]
    assert {(u.version, u.variant) for u in made} == {(4, uuid.RFC_4122)}
    assert len(set(made)) == 64


def test_existing_heartbeat_uuid_is_reused(tmp_path: Path) -> None:
    raw = bytes(range(16))
    (tmp_path / "hb_uuid").write_bytes(raw)
    assert load_uuid(tmp_path) == raw


def test_truncated_uuid_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "hb_uuid").write_bytes(b"short")
    fresh = load_uuid(tmp_path)
    assert len(fresh) == 16
    assert (tmp_path / "hb_uuid").read_bytes() == fresh


def test_state_directory_is_created_when_missing(tmp_path: Path) -> None:
    state = tmp_path / "var" / "lib" / "heartbeat"
    assert next_generation(state, now=10.0) == 11
    assert len(load_uuid(state)) == 16


def test_peer_marks_round_trip_through_the_state_directory(tmp_path: Path) -> None:
    marks = {"calc": PeerMark(generation=7, seq=1234), "prime": PeerMark(generation=1, seq=0)}
    save_peer_marks(tmp_path, marks)
    assert load_peer_marks(tmp_path) == marks
    assert (tmp_path / "pulse_peers").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[]", b'{"peers": []}', b'{"peers": {"calc": {"generation": -1, "seq": 2}}}',
     b'{"peers": {"calc": {"generation": true, "seq": 2}}}', b"\xff" * 10],
)  # fmt: skip
def test_an_unreadable_peers_file_is_an_empty_memory(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "pulse_peers").write_bytes(content)
    assert load_peer_marks(tmp_path) == {}


def test_a_missing_peers_file_is_an_empty_memory(tmp_path: Path) -> None:
    assert load_peer_marks(tmp_path) == {}
