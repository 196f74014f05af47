"""Plain statuses and ACKs read when the heartbeat timer fires, not when they arrive.

An idle node at keepalive 100 ms spends most of its CPU waking up (docs/performance.md,
"Deferred statuses"): once for its own timer and once for every peer's status, which
says nothing new ("I am still active"), and for every ACK on the LAN. A ``bcast`` or
``mcast`` link therefore opens a second receive socket on the same port, bound to the
address the heartbeats are sent to (the interface's broadcast address, or the group).
The kernel gives every datagram sent there to both sockets, and a classic BPF program
on each lets through only its half:

* the **deferred** socket keeps what begins like :data:`DEFERRED_PREFIXES` (a status
  with ``st=active``, an ``NS_ackmsg``; in pulse's classic form or Heartbeat's netstring
  form). Nobody waits on it: the daemon reads it just before it runs its timers
  (``Comms._tick_if_due``), and the kernel's receive time (``SO_TIMESTAMPNS``) dates
  each datagram, so a peer is declared dead exactly deadtime after its last status
  arrived, as before;
* the **prompt** socket keeps everything else (a status that changes something,
  retransmissions, the resource protocol, junk) and wakes the daemon at once; it first
  hands over what the deferred socket holds (older, as a rule), then its own.

The prompt socket leaves to the deferred one only what was sent to the deferred
socket's address: a unicast datagram, or a status to another address (the limited
broadcast, a broadcast address that changed since), reaches the prompt socket alone,
which keeps it. A datagram is never refused by both. If the deferred socket fills
faster than the timer empties it (a flood of forged statuses), it is watched like the
prompt one until it is quiet again.

The kernel counts what a filter refuses as a drop of that socket (``SO_MEMINFO``),
which is how :func:`overflow_drops` finds the datagrams really lost to a full buffer.
"""

from __future__ import annotations

import socket
import struct

__all__ = [
    "ANCILLARY_SIZE",
    "DEFERRED_BURST",
    "DEFERRED_PREFIXES",
    "SO_TIMESTAMPNS",
    "arrival",
    "overflow_drops",
    "split_filters",
]

#: What may wait for the timer: a status that changes nothing, and an ACK (it only
#: moves the peer's acknowledged sequence number, engine._dispatch_noseq; with 16
#: nodes every node broadcasts 15 a second, each addressed to one peer and read by
#: all). Field order is that of both encoders: pulse's (``wire/codec.py``) and
#: Heartbeat's netstring form (docs/heartbeat.md): ``t`` first, then ``st``.
DEFERRED_PREFIXES = (
    b">>>\nt=status\nst=active\n",
    b"###\n11:(0)t=status,12:(0)st=active,",
    b">>>\nt=NS_ackmsg\n",
    b"###\n14:(0)t=NS_ackmsg,",
)

#: Datagrams taken from the deferred socket per read. A read that finds this many
#: turns on prompt reading of that socket until one finds fewer (a flood).
DEFERRED_BURST = 256

SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>; also the SCM type of the timestamp
_TIMESPEC = struct.Struct("@ll")
ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)

_UDP_HEADER = 8  # a UDP socket's filter sees the UDP header at offset 0
_SKF_NET_OFF = -0x100000  # <linux/filter.h>: loads relative to the IP header
# Classic BPF opcodes (<linux/bpf_common.h>).
_LD_W_ABS = 0x00 | 0x00 | 0x20
_LD_H_ABS = 0x00 | 0x08 | 0x20
_LD_B_ABS = 0x00 | 0x10 | 0x20
_LD_W_LEN = 0x00 | 0x00 | 0x80
_JEQ_K = 0x05 | 0x10 | 0x00
_JGE_K = 0x05 | 0x30 | 0x00
_RET_K = 0x06 | 0x00
_KEEP = 0xFFFFFFFF
_DROP = 0


class _Program:
    """A tiny classic-BPF assembler: forward jumps to named labels."""

    def __init__(self) -> None:
        self._code: list[tuple[int, int, str | int, str | int, int]] = []
        self._labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        self._code.append((len(self._code), code, jt, jf, k))

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def assemble(self) -> bytes:
        out = []
        for index, code, jt, jf, k in self._code:
            out.append(struct.pack("=HBBI", code, self._jump(index, jt), self._jump(index, jf), k))
        return b"".join(out)

    def _jump(self, index: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        offset = self._labels[target] - index - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"jump to {target} out of range")
        return offset


def _match(program: _Program, prefix: bytes, miss: str) -> None:
    """Jump to *miss* unless the UDP payload starts with *prefix*."""
    program.op(_LD_W_LEN, 0)
    program.op(_JGE_K, _UDP_HEADER + len(prefix), 0, miss)
    offset = 0
    while offset < len(prefix):
        chunk = prefix[offset : offset + 4]
        load = {4: _LD_W_ABS, 2: _LD_H_ABS, 1: _LD_B_ABS}.get(len(chunk))
        if load is None:  # three bytes left: two, then one
            chunk = chunk[:2]
            load = _LD_H_ABS
        program.op(load, _UDP_HEADER + offset)
        program.op(_JEQ_K, int.from_bytes(chunk, "big"), 0, miss)
        offset += len(chunk)


def split_filters(destination: int, echo: tuple[int, int] | None = None) -> tuple[bytes, bytes]:
    """The programs of the prompt and the deferred socket, in that order.

    *destination* is the IPv4 address (as an int) the deferred socket is bound to: the
    interface's broadcast address, or the multicast group. Only a deferrable datagram
    sent to it is left to the deferred socket; one sent anywhere else (a unicast, the
    limited broadcast 255.255.255.255, an old broadcast address) reaches the prompt
    socket alone, which keeps it. *echo* is our own sender's (IPv4 address as an int, UDP
    port): datagrams from it are dropped by both (a broadcast comes back to its
    sender; see ``udp.echo_filter``).
    """
    programs = []
    for deferred in (False, True):
        program = _Program()
        if echo is not None:
            address, port = echo
            program.op(_LD_W_ABS, (_SKF_NET_OFF + 12) & 0xFFFFFFFF)  # IP source address
            program.op(_JEQ_K, address, 0, "classify")
            program.op(_LD_H_ABS, 0)  # UDP source port
            program.op(_JEQ_K, port, 0, "classify")
            program.op(_RET_K, _DROP)
        program.label("classify")
        if not deferred:
            program.op(_LD_W_ABS, (_SKF_NET_OFF + 16) & 0xFFFFFFFF)  # IP destination
            program.op(_JEQ_K, destination, 0, "other")
        for i, prefix in enumerate(DEFERRED_PREFIXES):
            _match(program, prefix, f"next{i}")
            program.op(_RET_K, _KEEP if deferred else _DROP)
            program.label(f"next{i}")
        program.label("other")
        program.op(_RET_K, _DROP if deferred else _KEEP)
        programs.append(program.assemble())
    return programs[0], programs[1]


def arrival(ancdata: list[tuple[int, int, bytes]], offset: float, now: float) -> float:
    """The trio time a datagram arrived, from its ``SCM_TIMESTAMPNS`` (wall clock).

    *offset* is trio's clock minus the wall clock, taken once per read; the result is
    never later than *now* (the wall clock may have been stepped since). The kernel
    turns receive timestamps on for the host a moment after the first socket asks (a
    deferred static key); a datagram received before that is stamped when it is read,
    so it can only look later than it came (a peer seems alive a little longer, once,
    at start-up), never earlier.
    """
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            at: float = sec + nsec / 1e9 + offset
            return min(now, at)
    return now


def overflow_drops(prompt_drops: int, echoes: int, deferred_read: int) -> int:
    """Datagrams lost to a full receive buffer, of a link with both sockets.

    The prompt socket's filter refuses our echoes and every datagram the deferred
    socket is given; those are then read, still queued, or lost to a full buffer. So
    the prompt socket's drop count is ``echoes + deferred_read + queued + lost`` (the
    deferred socket's overflow included), taken just after both were emptied (queued
    is 0).
    """
    return max(0, prompt_drops - echoes - deferred_read)
