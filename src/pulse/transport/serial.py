"""``serial DEV``: heartbeats over a null-modem cable, in Heartbeat's classic framing.

The port is opened 8N1, raw, at the medium's baud rate with trio-serial, and locked
with ``flock`` so a second program (or a second pulse) gets a clear "device busy"
instead of a garbled line. Reading goes through :class:`ClassicFrameReader` (8th bit
stripped, CR ignored, noise skipped); each complete ``>>>``…``<<<`` block becomes one
:class:`Datagram`.

Writing takes the classic bytes the caller encoded (serial never carries netstring,
docs/heartbeat.md#transports) and sends them whole. Heartbeat writes 512-byte chunks
with pauses because its ttys had tiny buffers; the kernel's tty layer already paces the
bytes at the line speed, so pulse only bounds the write: a frame that cannot be written within
``write_timeout`` plus its own transmission time (a stuck line, a peer that asserted
flow control forever) is abandoned and counted, and the caller carries on.

Hardware flow control (``rtscts``) is **off** by default, unlike Heartbeat, which sets
``CRTSCTS``: on a cable without RTS/CTS wired, on a USB adapter that does not report
CTS, or on a pseudo-terminal (tests, socat, virtual machines' serial consoles) CTS is
never asserted and every write would block until the timeout. Turn it on for a
properly wired cable when you want the peer to be able to throttle the sender.

When the device fails while running (unplugged USB adapter, EIO, end of file) the link
closes it and reopens it with an exponential back-off, logging at most once a minute
while it stays down.
"""

from __future__ import annotations

import errno
import termios

import trio
from trio_serial import SerialStream
from trio_serial.abstract import AbstractSerialStream, Parity, StopBits

from pulse.config.model import DEFAULT_BAUD
from pulse.errors import TransportError

from ._link import Counters, Datagram, LinkStatistics, describe_os_error
from .framing import FRAME_START, MAX_FRAME, ClassicFrameReader

DEFAULT_WRITE_TIMEOUT = 1.0
REOPEN_BACKOFF_MIN = 0.5
REOPEN_BACKOFF_MAX = 30.0
_READ_SIZE = 4096
_BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit

_ReadFailure = (OSError, termios.error, trio.BrokenResourceError, trio.ClosedResourceError)
_WriteFailure = (
    OSError,
    termios.error,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.BusyResourceError,
)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return describe_os_error(exc)
    return str(exc) or type(exc).__name__


class SerialLink:
    """One serial port; ``name`` is the device path, as Heartbeat names the medium."""

    kind = "serial"
    classic_only = True

    def __init__(
        self,
        *,
        device: str,
        baud: int = DEFAULT_BAUD,
        rtscts: bool = False,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        reopen_backoff: tuple[float, float] = (REOPEN_BACKOFF_MIN, REOPEN_BACKOFF_MAX),
        max_frame: int = MAX_FRAME,
    ) -> None:
        if baud <= 0:
            raise ValueError(f"baud rate {baud} must be positive")
        if not 0 < reopen_backoff[0] <= reopen_backoff[1]:
            raise ValueError(f"bad reopen back-off {reopen_backoff}")
        self.name = device
        self.device = device
        self.baud = baud
        self.rtscts = rtscts
        self.write_timeout = write_timeout
        self.reopen_backoff = reopen_backoff
        self.max_frame = max_frame
        self._counters = Counters(device)
        self._stream: AbstractSerialStream | None = None
        self._send_lock = trio.Lock()
        # A write abandoned mid-frame leaves a partial line on the wire; the next
        # frame then starts with a newline so the peer sees its ">>>" line intact.
        self._line_dirty = False
        self._framer_errors = 0

    def __repr__(self) -> str:
        return f"<SerialLink {self.describe()}>"

    def describe(self) -> str:
        flow = " rtscts" if self.rtscts else ""
        return f"serial {self.device} {self.baud} baud{flow}"

    def try_send_nowait(self, data: bytes) -> bool:
        return False  # a tty write may wait (flow control, baud rate): always queued

    def statistics(self) -> LinkStatistics:
        return self._counters.snapshot()

    # ----------------------------------------------------------------- opening

    async def _open(self) -> AbstractSerialStream:
        stream: AbstractSerialStream = SerialStream(
            self.device,
            baudrate=self.baud,
            bytesize=8,
            parity=Parity.NONE,
            stopbits=StopBits.ONE,
            xonxoff=False,
            rtscts=self.rtscts,
            exclusive=True,
        )
        try:
            await stream.aopen()
        except (OSError, termios.error, ValueError, NotImplementedError) as exc:
            raise TransportError(self._open_error(exc)) from exc
        await trio.lowlevel.checkpoint()
        return stream

    def _open_error(self, exc: BaseException) -> str:
        where = f"cannot open serial device {self.device}"
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOENT:
                return f"{where}: it does not exist"
            if exc.errno in (errno.EACCES, errno.EPERM):
                return f"{where}: permission denied (is pulse in the dialout group?)"
            if exc.errno in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in str(exc):
                return f"{where}: device busy (locked by another program: getty, another pulse?)"
            if exc.errno == errno.ENOTTY:
                return f"{where}: not a terminal"
        if isinstance(exc, termios.error):
            return f"{where}: not a usable terminal ({exc})"
        return f"{where}: {_describe(exc)}"

    async def _close(self, stream: AbstractSerialStream) -> None:
        if self._stream is stream:
            self._stream = None
        with trio.CancelScope(shield=True):
            await stream.aclose()

    # ----------------------------------------------------------------- running

    async def run(
        self,
        inbound: trio.MemorySendChannel[Datagram],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        stream: AbstractSerialStream | None = await self._open()
        self._stream = stream
        framer = ClassicFrameReader(max_frame=self.max_frame)
        self._framer_errors = 0
        backoff = self.reopen_backoff[0]
        task_status.started()
        try:
            while True:
                if stream is None:
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, self.reopen_backoff[1])
                    try:
                        stream = await self._open()
                    except TransportError as exc:
                        self._counters.note(f"still down: {exc}")
                        continue
                    self._stream = stream
                    self._counters.reopens += 1
                    self._counters.note("reopened")
                    continue
                try:
                    chunk = await stream.receive_some(_READ_SIZE)
                    failure = "" if chunk else "end of file (device gone?)"
                except _ReadFailure as exc:
                    chunk, failure = b"", _describe(exc)
                if failure:
                    self._counters.receive_error(f"read failed: {failure}; reopening")
                    await self._close(stream)
                    stream = None
                    framer.reset()
                    self._line_dirty = True
                    continue
                backoff = self.reopen_backoff[0]
                for frame in framer.feed(chunk):
                    self._counters.received(len(frame))
                    try:
                        await inbound.send(Datagram(link=self.name, data=frame, peer=self.device))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return  # nobody listens any more: the daemon is shutting down
                self._count_framer_losses(framer)
        finally:
            if stream is not None:
                await self._close(stream)

    def _count_framer_losses(self, framer: ClassicFrameReader) -> None:
        stats = framer.statistics()
        lost = stats.oversize_frames + stats.truncated_frames
        while self._framer_errors < lost:
            self._framer_errors += 1
            self._counters.receive_error(
                f"frame lost ({stats.oversize_frames} oversize, "
                f"{stats.truncated_frames} truncated so far)"
            )

    # ----------------------------------------------------------------- sending

    async def send(self, data: bytes) -> None:
        frame = data[:-1] if data.endswith(b"\0") else data
        if not frame.startswith(FRAME_START + b"\n"):
            self._counters.send_error("not a classic >>> frame: dropped (serial is classic only)")
            await trio.lowlevel.checkpoint()
            return
        stream = self._stream
        if stream is None:
            self._counters.send_error("device not open: frame dropped")
            await trio.lowlevel.checkpoint()
            return
        timeout = self.write_timeout + len(frame) * _BITS_PER_BYTE / self.baud
        try:
            with trio.move_on_after(timeout) as scope:
                async with self._send_lock:
                    payload = b"\n" + frame if self._line_dirty else frame
                    self._line_dirty = True  # until the whole frame is out
                    await stream.send_all(payload)
                    self._line_dirty = False
        except _WriteFailure as exc:
            self._counters.send_error(f"write failed: {_describe(exc)}")
            return
        if scope.cancelled_caught:
            self._counters.send_error(f"write timed out after {timeout:.2f}s: frame dropped")
        else:
            self._counters.sent(len(frame))
