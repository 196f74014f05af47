"""Types shared by every link: the datagram handed to membership, the Link protocol,
its statistics record, the bookkeeping (counters, rate-limited logging) that the
UDP, serial and ICMP implementations have in common, and the socket receive loop of
the UDP and ICMP links."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from pulse.errors import TransportError

log = logging.getLogger("pulse.transport")

_MAX_TRACKED_TEXTS = 32

#: Datagrams taken from a socket per wake-up before other tasks get a turn.
RECEIVE_BURST = 64
# Back-off between receive errors that repeat (a socket that keeps failing must not spin).
_RECV_BACKOFF_MIN = 0.05
_RECV_BACKOFF_MAX = 1.0


@dataclass(frozen=True, slots=True)
class Datagram:
    """One packet as received, before any decoding or authentication."""

    link: str
    """The medium name: the interface (``eth0``) or the serial device path."""
    data: bytes
    """One UDP payload, or one classic frame ``>>>\\n…<<<\\n`` from a serial line."""
    peer: str
    """Where it came from: ``"198.51.100.2:40000"``, or the tty path for serial."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkStatistics:
    """A snapshot of a link's counters (``Link.statistics()``)."""

    packets_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    send_errors: int = 0
    """Sends that failed or were dropped (per destination for UDP, per frame for serial)."""
    receive_errors: int = 0
    """Failed reads, and for serial frames lost to noise, truncation or oversize."""
    reopens: int = 0
    """Times a serial device was reopened after an error (always 0 for UDP)."""
    echoes: int = 0
    """Our own packets that came back (a broadcast reaches its sender too), dropped."""
    ignored: int = 0
    """Packets for someone else, dropped: ICMP traffic a ping link's raw socket sees
    that is not a reply to its own echoes (always 0 for UDP and serial)."""
    kernel_drops: int = 0
    """Datagrams the kernel dropped before we read them, its receive buffer being full
    (a flood: docs/hostile-input.md); UDP links only, from SO_MEMINFO."""
    acks_for_others: int = 0
    """ACKs addressed to another node, dropped by the receive socket's filter before
    they woke us (pulse.transport.sockfilter); UDP links with eBPF only."""
    last_error: str | None = None
    """Text of the most recent error, for ``pulsectl`` and logs."""
    failing_since: float | None = None
    """trio time of the first send that failed because this node's interface is down
    (LINK_DOWN_ERRNOS) since the last packet that went out; None when sends work."""


class Link(Protocol):
    """One communication path to the other nodes.

    Several media may share one link (two ``ucast eth0 PEER`` lines are one link with
    two destinations), and several links may carry the same name (``bcast eth0`` and
    ``ucast eth0``): the name is what the status shows, as in Heartbeat.
    """

    name: str
    classic_only: bool

    async def run(
        self,
        inbound: trio.MemorySendChannel[Datagram],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Open the link, call ``task_status.started()``, then receive forever.

        Raises :class:`~pulse.errors.TransportError` if the link cannot be opened.
        Errors while running are counted and logged, never raised. Returns when
        ``inbound`` is closed by the receiving side.
        """
        ...

    async def send(self, data: bytes) -> None:
        """Send one packet to every destination of this link; never raises."""
        ...

    def try_send_nowait(self, data: bytes) -> bool:
        """Send at once if that needs no waiting; False: the caller queues it for send().

        The heartbeat path calls this first: a UDP socket with buffer room takes the
        packet immediately. Never raises; errors are counted as for send().
        """
        ...

    def statistics(self) -> LinkStatistics: ...


class Sink(Protocol):
    """Where a link hands its datagrams when the engine's task takes them directly.

    Instead of queueing a datagram for the engine's task (a second task step and one
    more pass of trio's scheduler per packet), a link with a sink calls ``deliver``
    for each datagram of a burst and ``delivered`` once after it, in its own task,
    without a checkpoint (``Comms``, docs/performance.md). ``deliver`` never raises.
    """

    def deliver(self, datagram: Datagram) -> None: ...

    def delivered(self) -> None: ...


class Counters:
    """The mutable side of :class:`LinkStatistics`, with rate-limited error logging.

    A link that is cut fails every send, once per keepalive, for as long as it stays
    cut: the first failure with a given text is logged, repeats of that text are logged
    at most once per ``log_interval`` seconds with a count of what was suppressed.
    """

    __slots__ = (
        "_link",
        "_log_interval",
        "_logged",
        "acks_for_others",
        "bytes_received",
        "bytes_sent",
        "echoes",
        "failing_since",
        "ignored",
        "kernel_drops",
        "last_error",
        "packets_received",
        "packets_sent",
        "receive_errors",
        "reopens",
        "send_errors",
    )

    def __init__(self, link: str, *, log_interval: float = 60.0) -> None:
        self._link = link
        self._log_interval = log_interval
        # error text -> (when it was last logged, how many repeats were not logged)
        self._logged: dict[str, tuple[float, int]] = {}
        self.packets_sent = 0
        self.bytes_sent = 0
        self.packets_received = 0
        self.bytes_received = 0
        self.send_errors = 0
        self.receive_errors = 0
        self.reopens = 0
        self.echoes = 0
        self.ignored = 0
        self.kernel_drops = 0
        self.acks_for_others = 0
        self.last_error: str | None = None
        self.failing_since: float | None = None

    def sent(self, size: int) -> None:
        self.packets_sent += 1
        self.bytes_sent += size
        self.failing_since = None

    def received(self, size: int) -> None:
        self.packets_received += 1
        self.bytes_received += size

    def send_error(self, text: str, *, error: int | None = None) -> None:
        """Count a failed send; *error* (an errno) in LINK_DOWN_ERRNOS means the
        interface is down here (a firewall's EPERM or a full buffer do not)."""
        self.send_errors += 1
        if error in LINK_DOWN_ERRNOS and self.failing_since is None:
            self.failing_since = trio.current_time()
        self._error(text, logging.DEBUG)

    def receive_error(self, text: str, *, level: int = logging.WARNING) -> None:
        self.receive_errors += 1
        self._error(text, level)

    def note(self, text: str, *, level: int = logging.WARNING) -> None:
        """Log a condition (reopen failure…) under the same rate limit, without counting."""
        self._error(text, level)

    def snapshot(self) -> LinkStatistics:
        return LinkStatistics(
            packets_sent=self.packets_sent,
            bytes_sent=self.bytes_sent,
            packets_received=self.packets_received,
            bytes_received=self.bytes_received,
            send_errors=self.send_errors,
            receive_errors=self.receive_errors,
            reopens=self.reopens,
            echoes=self.echoes,
            ignored=self.ignored,
            kernel_drops=self.kernel_drops,
            acks_for_others=self.acks_for_others,
            last_error=self.last_error,
            failing_since=self.failing_since,
        )

    def _error(self, text: str, level: int) -> None:
        self.last_error = text
        now = trio.current_time()
        seen = self._logged.get(text)
        if seen is not None and now - seen[0] < self._log_interval:
            self._logged[text] = (seen[0], seen[1] + 1)
            return
        suppressed = seen[1] if seen is not None else 0
        suffix = f" ({suppressed} similar suppressed)" if suppressed else ""
        log.log(level, "link %s: %s%s", self._link, text, suffix)
        if seen is None and len(self._logged) >= _MAX_TRACKED_TEXTS:
            self._logged.pop(next(iter(self._logged)))  # forget the oldest text
        self._logged[text] = (now, 0)


#: Send errors that mean this node's own interface (or its address) is gone or down.
LINK_DOWN_ERRNOS = frozenset(
    {errno.ENETDOWN, errno.ENETUNREACH, errno.ENODEV, errno.ENXIO, errno.EADDRNOTAVAIL}
)


def describe_os_error(exc: OSError) -> str:
    """``"ENETDOWN: Network is down"`` rather than ``"[Errno 100] Network is down"``."""
    if exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{name}: {exc.strerror or exc}"
    return str(exc)


RESOLVE_TIMEOUT = 10.0


async def resolve_host(host: str, family: socket.AddressFamily, what: str) -> tuple[Any, ...]:
    """The socket address of *host* (a literal address or a name) in *family*.

    Raises :class:`TransportError` naming *what* (``ucast peer``, ``ping host``…).
    """
    try:
        with trio.fail_after(RESOLVE_TIMEOUT):
            infos = await trio.socket.getaddrinfo(host, None, family=family, type=socket.SOCK_DGRAM)
    except (OSError, trio.TooSlowError) as exc:
        raise TransportError(f"cannot resolve {what} {host!r}: {exc}") from exc
    if not infos:
        raise TransportError(f"cannot resolve {what} {host!r}: no address")
    return tuple(infos[0][4])


async def receive_datagrams(
    sock: socket.socket,
    inbound: trio.MemorySendChannel[Datagram],
    counters: Counters,
    accept: Callable[[bytes, Any], Datagram | None],
    *,
    max_size: int = 65535,
    sink: Callable[[], Sink | None] = lambda: None,
) -> None:
    """Receive from a non-blocking datagram socket until ``inbound`` is closed.

    One wake-up per burst: wait until the socket is readable, then take every packet
    already queued (up to :data:`RECEIVE_BURST`) into one reused buffer and hand what
    ``accept(packet, address)`` makes of it to the engine, without a checkpoint of its
    own. An idle node wakes once per packet instead of four times (recvfrom's
    checkpoint, the channel's, the retry, the wait), which is most of what a heartbeat
    costs a Python process. ``accept`` counts what it drops and returns None for it.
    Receive errors are counted, with a growing back-off while they repeat. While
    ``sink()`` names a :class:`Sink`, datagrams go to it instead of ``inbound``.
    """
    backoff = _RECV_BACKOFF_MIN
    # recvfrom(65535) would allocate (and shrink) a 64 KiB object for every packet,
    # and once more for the attempt that finds the socket empty.
    buffer = bytearray(max_size)
    view = memoryview(buffer)
    while True:
        await trio.lowlevel.wait_readable(sock)
        direct = sink()
        for _ in range(RECEIVE_BURST):
            try:
                size, address = sock.recvfrom_into(buffer)
            except BlockingIOError:
                break
            except OSError as exc:
                counters.receive_error(f"receive failed: {describe_os_error(exc)}")
                if direct is not None:
                    direct.delivered()
                    direct = None
                await trio.sleep(backoff)
                backoff = min(backoff * 2, _RECV_BACKOFF_MAX)
                break
            backoff = _RECV_BACKOFF_MIN
            datagram = accept(view[:size].tobytes(), address)
            if datagram is None:
                continue
            if direct is not None:
                direct.deliver(datagram)
                continue
            try:
                try:
                    inbound.send_nowait(datagram)
                except trio.WouldBlock:
                    await inbound.send(datagram)  # the engine is behind: wait for room
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # nobody listens any more: the daemon is shutting down
        if direct is not None:
            direct.delivered()
