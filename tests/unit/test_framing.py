"""The serial frame reader: Heartbeat's ``>>>``/``<<<`` framing over a noisy byte stream."""

from __future__ import annotations

import pytest

from pulse.transport.framing import (
    MAX_FRAME,
    ClassicFrameReader,
    strip_line_noise,
)

FRAME = b">>>\nt=status\nsrc=node1\nauth=1 abc\n<<<\n"


def test_a_clean_frame_is_delivered_whole() -> None:
    reader = ClassicFrameReader()
    assert reader.feed(FRAME) == [FRAME]
    assert reader.statistics().frames == 1
    assert reader.buffered == 0


def test_noise_before_the_start_line_is_discarded() -> None:
    reader = ClassicFrameReader()
    noise = b"login: \x00\x7fgarbage\nmore garbage\n<<<\nt=stray\n"
    assert reader.feed(noise + FRAME) == [FRAME]
    assert reader.statistics().discarded_bytes == len(noise)


def test_carriage_returns_are_ignored() -> None:
    reader = ClassicFrameReader()
    assert reader.feed(FRAME.replace(b"\n", b"\r\n")) == [FRAME]


def test_eighth_bit_is_stripped_like_istrip() -> None:
    reader = ClassicFrameReader()
    noisy = bytes(b | 0x80 for b in FRAME)
    assert reader.feed(noisy) == [FRAME]


def test_a_cr_with_the_eighth_bit_set_is_ignored_too() -> None:
    # ISTRIP applies before IGNCR: 0x8D becomes CR, and CR is dropped.
    assert strip_line_noise(b"a\x8db\r\n") == b"ab\n"


def test_a_frame_split_across_reads_is_reassembled() -> None:
    reader = ClassicFrameReader()
    out: list[bytes] = []
    for i in range(len(FRAME)):
        out += reader.feed(FRAME[i : i + 1])
    assert out == [FRAME]


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 10, len(FRAME) - 4, len(FRAME) - 1])
def test_a_frame_cut_at_any_point_is_reassembled(cut: int) -> None:
    reader = ClassicFrameReader()
    assert reader.feed(FRAME[:cut]) == []
    assert reader.feed(FRAME[cut:]) == [FRAME]


def test_many_frames_in_one_read_are_delivered_in_order() -> None:
    frames = [b">>>\nseq=%d\n<<<\n" % i for i in range(50)]
    reader = ClassicFrameReader()
    assert reader.feed(b"".join(frames)) == frames
    assert reader.statistics().frames == 50


def test_start_and_end_lines_are_normalised() -> None:
    reader = ClassicFrameReader()
    assert reader.feed(b">>>   \na=1\n<<< trailing\n") == [b">>>\na=1\n<<<\n"]


def test_an_empty_value_line_is_kept() -> None:
    reader = ClassicFrameReader()
    assert reader.feed(b">>>\na=\n\n<<<\n") == [b">>>\na=\n\n<<<\n"]


def test_a_new_start_line_abandons_an_unfinished_frame() -> None:
    reader = ClassicFrameReader()
    assert reader.feed(b">>>\nt=status\nsrc=no") == []
    # The sender restarted and sent a fresh frame before finishing the old one.
    assert reader.feed(b"de1\n" + FRAME) == [FRAME]
    assert reader.statistics().truncated_frames == 1


def test_an_oversize_frame_is_dropped_and_the_next_one_delivered() -> None:
    reader = ClassicFrameReader(max_frame=64)
    big = b">>>\n" + b"x=" + b"y" * 100 + b"\n<<<\n"
    small = b">>>\na=1\n<<<\n"
    assert reader.feed(big + small) == [small]
    stats = reader.statistics()
    assert stats.oversize_frames == 1
    assert stats.frames == 1


def test_a_frame_of_exactly_max_frame_bytes_is_delivered() -> None:
    body = b"k=" + b"v" * 20 + b"\n"
    frame = b">>>\n" + body + b"<<<\n"
    assert ClassicFrameReader(max_frame=len(frame)).feed(frame) == [frame]
    assert ClassicFrameReader(max_frame=len(frame) - 1).feed(frame) == []


def test_an_endless_frame_never_holds_more_than_the_limit() -> None:
    reader = ClassicFrameReader(max_frame=MAX_FRAME)
    reader.feed(b">>>\n")
    chunk = b"field=" + b"z" * 4090 + b"\n"
    for _ in range(200):  # 800 KiB of body, no end line
        reader.feed(chunk)
        assert reader.buffered <= 2 * MAX_FRAME
    assert reader.statistics().oversize_frames >= 1
    assert reader.buffered <= len(chunk)


def test_an_endless_line_without_newline_never_grows_memory() -> None:
    reader = ClassicFrameReader(max_frame=1024)
    for _ in range(1000):
        assert reader.feed(b"\xff" * 4096) == []
        assert reader.buffered <= 3
    assert reader.feed(b"\n" + FRAME) == [FRAME]


def test_an_endless_start_line_is_bounded_and_the_reader_recovers() -> None:
    reader = ClassicFrameReader(max_frame=1024)
    reader.feed(b">>>")
    for _ in range(100):
        reader.feed(b">" * 1000)
        assert reader.buffered <= 1024 + 1000
    assert reader.feed(b"\n" + FRAME) == [FRAME]


def test_reset_forgets_a_partial_frame() -> None:
    reader = ClassicFrameReader()
    reader.feed(b">>>\nt=status\n")
    reader.reset()
    assert reader.buffered == 0
    assert reader.feed(b"src=x\n<<<\n") == []
    assert reader.feed(FRAME) == [FRAME]


def test_a_limit_too_small_for_any_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="empty frame"):
        ClassicFrameReader(max_frame=4)
