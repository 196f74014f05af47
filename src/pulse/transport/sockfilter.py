"""The programs on a UDP link's receive socket: what the kernel drops for us, counted.

Two kinds of datagram would wake an idle node for nothing:

* **our own broadcasts**, which the kernel loops back to our receive socket
  (``IP_MULTICAST_LOOP`` does not apply to broadcasts): dropped by their source address
  and port (``bcast`` links only);
* **ACKs addressed to another node.** Every node ACKs every tenth message of each peer
  with an ``NS_ackmsg`` whose ``dest`` names that peer, and sends it to the whole LAN
  (docs/heartbeat.md, "Field order"). With N nodes at keepalive 100 ms each node reads
  N x (N - 1) ACKs a second and only N - 1 of them are for it: 225 of 240 with 16
  nodes, 992 of 1,023 with 32. pulse throws the others away unread
  (``codec.ack_for_another``), so the kernel may as well, before they wake the daemon.

The kernel counts what a filter drops as drops of the socket (``SO_MEMINFO``), together
with what it drops for a full receive buffer, the drops that matter (a flood). So the
program is eBPF and counts each kind in an array map of its own (:class:`DropCounts`):
the link reports ``kernel_drops`` less the filter's, and ``acks_for_others``. Loading
eBPF needs CAP_BPF (root; Debian does not allow unprivileged BPF). Without it a
``bcast`` link attaches the classic :func:`echo_filter` and subtracts what it sent, and
ACKs for others reach Python's bytes check.

The ACK test mirrors ``codec.ack_for_another`` for the two encoders' field order (pulse's
classic form and Heartbeat's netstring form; ``t`` first, ``dest`` second) and is never
stricter than it: a datagram is dropped only when it starts like an ACK *and* its
``dest`` differs from our name, compared case-insensitively (each byte with 0x20 set,
which only lets more through). Everything else, ACKs for us and any other shape, is kept
whole. In the netstring form the ``dest`` field's length prefix must be our name's; an
ACK to a node whose name has another length is kept, for the bytes check.

A socket filter sees the UDP header at offset 0 and the IP header through
``SKF_NET_OFF``. A load past the end of a datagram would end the program with "drop",
so every path checks the length first and keeps what is too short to test (an ACK too
short to hold our name goes to the decoder, which counts it).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable

from pulse.wire.codec import ACK_CLASSIC_PREFIX, ack_netstring_head

__all__ = ["MAX_NAME", "DropCounts", "counting_filter", "echo_filter"]

#: Longer node names get no ACK filter (their ACKs go to the bytes check).
MAX_NAME = 64

_UDP_HEADER = 8
_SKF_NET_OFF = -0x100000  # <linux/filter.h>: loads relative to the IP header


# Classic BPF opcodes (<linux/bpf_common.h>).
_BPF_LD_W_ABS = 0x00 | 0x00 | 0x20
_BPF_LD_H_ABS = 0x00 | 0x08 | 0x20
_BPF_JEQ_K = 0x05 | 0x10 | 0x00
_BPF_RET_K = 0x06 | 0x00


def echo_filter(address: ipaddress.IPv4Address, port: int) -> bytes:
    """A classic BPF program that drops datagrams from *address*:*port* (our own sender),
    for a link without eBPF. Matching the address as well as the port keeps a peer whose
    sender happens to use the same port number out of harm's way."""
    instructions = (
        (_BPF_LD_W_ABS, 0, 0, (_SKF_NET_OFF + 12) & 0xFFFFFFFF),  # IP source address
        (_BPF_JEQ_K, 0, 3, int(address)),
        (_BPF_LD_H_ABS, 0, 0, 0),  # UDP source port
        (_BPF_JEQ_K, 0, 1, port),
        (_BPF_RET_K, 0, 0, 0),  # ours: drop
        (_BPF_RET_K, 0, 0, 0xFFFFFFFF),  # anyone else's: keep whole
    )
    return b"".join(struct.pack("=HBBI", *ins) for ins in instructions)


def _chunks(data: bytes) -> list[tuple[int, bytes]]:
    """*data* cut into loads of 4, 2 and 1 bytes, with their offsets."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        size = 4 if len(data) - offset >= 4 else 2 if len(data) - offset >= 2 else 1
        out.append((offset, data[offset : offset + size]))
        offset += size
    return out


# ----------------------------------------------------------------------------- eBPF

_ECHOES, _ACKS = 0, 1

_BPF_MAP_CREATE = 0
_BPF_MAP_LOOKUP_ELEM = 1
_BPF_PROG_LOAD = 5
_BPF_MAP_TYPE_ARRAY = 2
_BPF_PROG_TYPE_SOCKET_FILTER = 1
_BPF_PSEUDO_MAP_FD = 1
_BPF_FUNC_MAP_LOOKUP_ELEM = 1
_SO_ATTACH_BPF = 50  # <asm-generic/socket.h>
_SYS_BPF = {"x86_64": 321, "aarch64": 280}  # <asm/unistd.h>

# eBPF opcodes (<linux/bpf.h>); the JMP32 compares look at the low 32 bits only.
_E_MOV64_X = 0xBF
_E_MOV64_K = 0xB7
_E_MOV32_K = 0xB4
_E_ADD64_K = 0x07
_E_OR32_K = 0x44
_E_LD_ABS = {4: 0x20, 2: 0x28, 1: 0x30}
_E_LDX_W = 0x61
_E_ST_W = 0x62
_E_LD_IMM64 = 0x18
_E_ATOMIC_ADD64 = 0xDB  # BPF_STX | BPF_ATOMIC | BPF_DW, imm BPF_ADD
_E_CALL = 0x85
_E_EXIT = 0x95
_E_JA = 0x05
_E_JEQ64_K = 0x15
_E_JEQ32_K = 0x16
_E_JNE32_K = 0x56
_E_JLT32_K = 0xA6


class _EProgram:
    """A tiny eBPF assembler: jumps to named labels (16-bit offsets)."""

    def __init__(self) -> None:
        self._code: list[tuple[int, int, int, str | int, int]] = []
        self._labels: dict[str, int] = {}

    def op(self, code: int, dst: int = 0, src: int = 0, off: str | int = 0, imm: int = 0) -> None:
        self._code.append((code, dst, src, off, imm))

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def assemble(self) -> bytes:
        out = []
        for i, (code, dst, src, off, imm) in enumerate(self._code):
            jump = off if isinstance(off, int) else self._labels[off] - i - 1
            imm = imm - (1 << 32) if imm >= 1 << 31 else imm
            out.append(struct.pack("=BBhi", code, (src << 4) | dst, jump, imm))
        return b"".join(out)


def _e_expect(program: _EProgram, at: int, data: bytes, miss: str, *, fold: bool = False) -> None:
    for offset, chunk in _chunks(data):
        program.op(_E_LD_ABS[len(chunk)], imm=_UDP_HEADER + at + offset)  # into r0
        value = int.from_bytes(chunk, "big")
        if fold:
            mask = int.from_bytes(b"\x20" * len(chunk), "big")
            program.op(_E_OR32_K, 0, imm=mask)
            value |= mask
        program.op(_E_JNE32_K, 0, off=miss, imm=value)


def _e_ack_test(program: _EProgram, prefix: bytes, name: bytes, end: bytes, n: int) -> None:
    following = f"next{n}"
    program.op(_E_JLT32_K, 7, off=following, imm=_UDP_HEADER + len(prefix))  # r7: length
    _e_expect(program, 0, prefix, following)
    program.op(_E_JLT32_K, 7, off="keep", imm=_UDP_HEADER + len(prefix) + len(name) + 1)
    _e_expect(program, len(prefix), name, "drop-ack", fold=True)
    _e_expect(program, len(prefix) + len(name), end, "drop-ack")
    program.op(_E_JA, off="keep")
    program.label(following)


def counting_filter(
    echo: tuple[ipaddress.IPv4Address, int] | None, local: bytes | None, counts_fd: int
) -> bytes:
    """The receive program: drop datagrams from *echo* (our own sender's address and
    port) and ACKs for a node other than *local* (lower case; None: keep every ACK),
    counting each in the array map *counts_fd* (0: echoes, 1: ACKs)."""
    program = _EProgram()
    program.op(_E_MOV64_X, 6, 1)  # r6: the packet (LD_ABS reads through it)
    program.op(_E_LDX_W, 7, 6, 0)  # r7 = skb->len (struct __sk_buff: len first)
    if echo is not None:
        address, port = echo
        program.op(_E_LD_ABS[4], imm=_SKF_NET_OFF + 12)  # IP source address
        program.op(_E_JNE32_K, 0, off="not-echo", imm=int(address))
        program.op(_E_LD_ABS[2], imm=0)  # UDP source port
        program.op(_E_JEQ32_K, 0, off="drop-echo", imm=port)
        program.label("not-echo")
    name = local if local is not None and 0 < len(local) <= MAX_NAME else None
    if name is not None:
        _e_ack_test(program, ACK_CLASSIC_PREFIX, name, b"\n", 0)
        _e_ack_test(program, ack_netstring_head(name), name, b",", 1)
    program.label("keep")
    program.op(_E_MOV32_K, 0, imm=0xFFFFFFFF)
    program.op(_E_EXIT)
    if echo is None and name is None:
        return program.assemble()  # nothing to drop (the verifier refuses dead code)
    if echo is not None:
        program.label("drop-echo")
        program.op(_E_ST_W, 10, off=-4, imm=_ECHOES)
        program.op(_E_JA, off="count")
    if name is not None:
        program.label("drop-ack")
        program.op(_E_ST_W, 10, off=-4, imm=_ACKS)
    program.label("count")
    program.op(_E_LD_IMM64, 1, _BPF_PSEUDO_MAP_FD, imm=counts_fd)
    program.op(0)  # the second half of the 64-bit load
    program.op(_E_MOV64_X, 2, 10)
    program.op(_E_ADD64_K, 2, imm=-4 & 0xFFFFFFFF)
    program.op(_E_CALL, imm=_BPF_FUNC_MAP_LOOKUP_ELEM)
    program.op(_E_JEQ64_K, 0, off="drop", imm=0)
    program.op(_E_MOV64_K, 1, imm=1)
    program.op(_E_ATOMIC_ADD64, 0, 1)
    program.label("drop")
    program.op(_E_MOV64_K, 0, imm=0)
    program.op(_E_EXIT)
    return program.assemble()


class DropCounts:
    """An attached eBPF receive filter's counts: what it dropped, by kind."""

    def __init__(self) -> None:
        self._sys = _bpf_syscall()
        attr = struct.pack("=IIIII", _BPF_MAP_TYPE_ARRAY, 4, 8, 2, 0)
        self._fd = self._sys(_BPF_MAP_CREATE, attr)

    def attach(
        self,
        sock: socket.socket,
        echo: tuple[ipaddress.IPv4Address, int] | None,
        local: bytes | None,
    ) -> None:
        """Load the program and attach it to *sock* (replacing any filter); OSError."""
        code = counting_filter(echo, local, self._fd)
        try:
            prog = self._load(code, None)
        except OSError as exc:  # once more, for the verifier's reason
            log = ctypes.create_string_buffer(1 << 16)
            with contextlib.suppress(OSError):
                self._load(code, log)
            why = log.value.decode(errors="replace").strip().splitlines()[-2:]
            raise OSError(
                exc.errno, f"loading the receive filter: {exc.strerror} ({' / '.join(why)})"
            ) from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_BPF, prog)
        finally:
            os.close(prog)  # the socket holds the program now

    def _load(self, code: bytes, log: ctypes.Array[ctypes.c_char] | None) -> int:
        insns = ctypes.create_string_buffer(code, len(code))
        license = ctypes.create_string_buffer(b"GPL")
        attr = struct.pack(
            "=IIQQIIQII16s",
            _BPF_PROG_TYPE_SOCKET_FILTER,
            len(code) // 8,
            ctypes.addressof(insns),
            ctypes.addressof(license),
            0 if log is None else 1,
            0 if log is None else len(log),
            0 if log is None else ctypes.addressof(log),
            0,
            0,
            b"pulse_rx",
        )
        return self._sys(_BPF_PROG_LOAD, attr)

    def read(self) -> tuple[int, int]:
        """(echoes, ACKs for other nodes) dropped since the map was made."""
        return self._lookup(_ECHOES), self._lookup(_ACKS)

    def _lookup(self, index: int) -> int:
        key = ctypes.c_uint32(index)
        value = ctypes.c_uint64(0)
        attr = struct.pack("=I4xQQQ", self._fd, ctypes.addressof(key), ctypes.addressof(value), 0)
        self._sys(_BPF_MAP_LOOKUP_ELEM, attr)
        return int(value.value)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _bpf_syscall() -> Callable[[int, bytes], int]:
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        raise OSError(errno.ENOSYS, "bpf() is not known on this architecture")
    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.restype = ctypes.c_long

    def bpf(cmd: int, attr: bytes) -> int:
        buf = ctypes.create_string_buffer(attr, len(attr))
        result = int(
            syscall(ctypes.c_long(number), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr)))
        )
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return result

    return bpf
