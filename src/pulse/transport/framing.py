"""Heartbeat's serial framing: classic messages between ``>>>`` and ``<<<`` lines.

A serial line is a byte stream with no packet boundaries, and it may carry line noise,
a peer that restarted in the middle of a message, or a console login banner. Heartbeat
copes by reading line by line: it discards lines until one starts with ``>>>``, then
collects lines until one starts with ``<<<`` (docs/heartbeat.md#transports). Its tty is set with
``ISTRIP`` (the 8th bit of every byte is cleared) and ``IGNCR`` (carriage returns are
dropped); trio-serial opens the port fully raw, so :class:`ClassicFrameReader` applies
both in software.

The reader is pure (bytes in, frames out) and keeps its memory bounded whatever it is
fed: a frame that grows beyond ``max_frame`` bytes is dropped and the reader waits for
the next ``>>>`` line, and a long line of garbage outside a frame is skipped without
being kept.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Heartbeat's MAXMSG: no message may be 256 KiB or larger.
MAX_FRAME = 256 * 1024

FRAME_START = b">>>"
FRAME_END = b"<<<"

_EMPTY_FRAME_SIZE = len(FRAME_START) + len(FRAME_END) + 2

# ISTRIP: clear the 8th bit of every byte.
_ISTRIP = bytes(b & 0x7F for b in range(256))


def strip_line_noise(data: bytes) -> bytes:
    """Apply Heartbeat's tty input flags: 8th bit stripped, then CR ignored."""
    return data.translate(_ISTRIP).replace(b"\r", b"")


@dataclass(frozen=True, slots=True, kw_only=True)
class FramerStatistics:
    """Counters of a :class:`ClassicFrameReader`.

    ``frames``: complete frames delivered. ``discarded_bytes``: bytes thrown away
    outside any frame (noise, banners, the tail of a dropped frame). ``oversize_frames``:
    frames dropped because they reached ``max_frame`` bytes. ``truncated_frames``:
    frames abandoned because a new ``>>>`` line started before their ``<<<``.
    """

    frames: int = 0
    discarded_bytes: int = 0
    oversize_frames: int = 0
    truncated_frames: int = 0


class ClassicFrameReader:
    """Turns a serial byte stream into classic frames ``b">>>\\n…<<<\\n"``.

    Feed it whatever ``receive_some`` returned; it returns the frames completed by
    that chunk, in order. Frames are normalised: the start and end lines are exactly
    ``>>>`` and ``<<<`` and every line ends in ``\\n``.
    """

    __slots__ = (
        "_discarded",
        "_frame",
        "_frames",
        "_line",
        "_max_frame",
        "_oversize",
        "_skip_line",
        "_truncated",
    )

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        if max_frame < _EMPTY_FRAME_SIZE:
            raise ValueError(f"max_frame {max_frame} cannot hold even an empty frame")
        self._max_frame = max_frame
        self._line = bytearray()  # the current, not yet terminated line
        self._skip_line = False  # discard the rest of the current line
        self._frame: bytearray | None = None  # body lines of the frame being collected
        self._frames = 0
        self._discarded = 0
        self._oversize = 0
        self._truncated = 0

    def statistics(self) -> FramerStatistics:
        return FramerStatistics(
            frames=self._frames,
            discarded_bytes=self._discarded,
            oversize_frames=self._oversize,
            truncated_frames=self._truncated,
        )

    @property
    def buffered(self) -> int:
        """Bytes currently held (partial line plus partial frame)."""
        return len(self._line) + (len(self._frame) if self._frame is not None else 0)

    def reset(self) -> None:
        """Forget any partial line or frame (after the device was reopened)."""
        if self._frame is not None:
            self._truncated += 1
        self._discarded += self.buffered
        self._line.clear()
        self._frame = None
        self._skip_line = False

    def feed(self, data: bytes) -> list[bytes]:
        """Consume one chunk of raw bytes; return the frames it completed."""
        out: list[bytes] = []
        pieces = strip_line_noise(data).split(b"\n")
        # Every piece but the last is terminated by a newline.
        for piece in pieces[:-1]:
            self._extend_line(piece)
            if self._skip_line:
                self._discarded += 1  # the newline
                self._skip_line = False
                continue
            frame = self._end_line(bytes(self._line))
            self._line.clear()
            if frame is not None:
                out.append(frame)
        self._extend_line(pieces[-1])
        return out

    # ----------------------------------------------------------------- internals

    def _extend_line(self, piece: bytes) -> None:
        """Append part of a line, unless that would break the memory bound."""
        if self._skip_line:
            self._discarded += len(piece)
            return
        self._line += piece
        if self._frame is None:
            # Outside a frame only a line starting with ">>>" matters, and only its
            # first bytes tell: anything else can be dropped as it arrives.
            prefix = bytes(self._line[: len(FRAME_START)])
            if not FRAME_START.startswith(prefix) or len(self._line) > self._max_frame:
                self._discard_line()
        elif self._projected_size() > self._max_frame or len(self._line) > self._max_frame:
            self._drop_oversize_frame()

    def _projected_size(self) -> int:
        """The smallest size the frame being collected can still end up with."""
        assert self._frame is not None
        size = len(FRAME_START) + 1 + len(self._frame) + len(FRAME_END) + 1
        if FRAME_END.startswith(bytes(self._line[: len(FRAME_END)])):
            return size  # the current line may be the end line, which adds nothing
        return size + len(self._line) + 1

    def _discard_line(self) -> None:
        self._discarded += len(self._line)
        self._line.clear()
        self._skip_line = True

    def _drop_oversize_frame(self) -> None:
        assert self._frame is not None
        self._oversize += 1
        self._discarded += len(FRAME_START) + 1 + len(self._frame)
        self._frame = None
        self._discard_line()

    def _end_line(self, line: bytes) -> bytes | None:
        """Handle one complete line (without its newline)."""
        if line.startswith(FRAME_START):
            if self._frame is not None:
                # The sender restarted mid-message: the old frame can never complete.
                self._truncated += 1
                self._discarded += len(FRAME_START) + 1 + len(self._frame)
            self._frame = bytearray()
            self._discarded += len(line) - len(FRAME_START)
            return None
        if self._frame is None:
            self._discarded += len(line) + 1
            return None
        if line.startswith(FRAME_END):
            frame = FRAME_START + b"\n" + bytes(self._frame) + FRAME_END + b"\n"
            self._frame = None
            self._frames += 1
            return frame
        self._frame += line
        self._frame += b"\n"
        return None
