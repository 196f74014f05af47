"""Heartbeat's identity files in the state directory (``/var/lib/heartbeat``).

* ``hb_generation``: the generation number sent as ``hg``. Heartbeat stores it as
  16 bytes, the decimal number right-aligned in 15 characters followed by a
  newline, and adds one at every start. A pulse node replacing a Heartbeat node on
  the same host continues the same file, so its peers see a restart, never a
  replay (lower generation) or a healed partition (same generation).
* ``hb_uuid``: the node's UUID, 16 raw bytes, sent as ``srcuuid``.
* ``pulse_peers`` (pulse's own): each peer's last generation and sequence number,
  written when the peer is declared dead and at a clean shutdown. A restarted node
  starts from them, so that replayed captures of a peer from before the restart are
  dropped as replays instead of bringing a dead peer back (docs/hostile-input.md).

These functions block on the file system (writes with fsync); call them through
``trio.to_thread.run_sync`` from async code.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

GENERATION_FILE = "hb_generation"
UUID_FILE = "hb_uuid"
PEERS_FILE = "pulse_peers"
_MAX_PEERS_FILE = 64 * 1024
_GENERATION_WIDTH = 15


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write *data* to *path* via a synced temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_generation(path: Path) -> int | None:
    """The stored generation, or None when the file is missing or unreadable."""
    try:
        text = path.read_bytes().decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    text = text.strip()
    if not text.isdigit():
        return None
    return int(text)


def format_generation(generation: int) -> bytes:
    """``hb_generation``'s content: 15 right-aligned digits and a newline."""
    return f"{generation:>{_GENERATION_WIDTH}d}\n".encode("ascii")


def next_generation(state_dir: Path, method: str = "file", *, now: float) -> int:
    """This start's generation number, as Heartbeat's ``hbgenmethod`` computes it.

    ``method="file"`` (the default) reads ``hb_generation``, adds one and writes it
    back before returning; a missing or unreadable file starts from ``int(now) + 1``
    (Heartbeat logs ``No Previous generation - starting at …`` then). ``"time"``
    returns ``int(now)`` and stores nothing. *now* is the Unix wall-clock time.
    """
    if method == "time":
        return int(now)
    if method != "file":
        raise ValueError(f"unknown hbgenmethod {method!r} (expected 'file' or 'time')")
    path = state_dir / GENERATION_FILE
    previous = _read_generation(path)
    generation = int(now) + 1 if previous is None else previous + 1
    _write_atomically(path, format_generation(generation))
    return generation


def random_uuid() -> bytes:
    """A random (version 4, RFC 4122 variant) UUID's 16 bytes, as ``uuid.uuid4().bytes``
    makes them, without importing :mod:`uuid` into every daemon (0.15 MiB) for one call."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant: RFC 4122
    return bytes(raw)


def load_uuid(state_dir: Path) -> bytes:
    """The node's 16-byte UUID from ``hb_uuid``, created with a random UUID if needed.

    Like Heartbeat, a file that cannot be read as exactly 16 bytes is replaced by
    a freshly generated UUID.
    """
    path = state_dir / UUID_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    if len(data) == 16:
        return data
    fresh = random_uuid()
    _write_atomically(path, fresh, mode=0o644)
    return fresh


@dataclass(frozen=True, slots=True)
class PeerMark:
    """The last generation of a peer we heard, and its highest sequence number in it."""

    generation: int
    seq: int


def load_peer_marks(state_dir: Path) -> dict[str, PeerMark]:
    """``pulse_peers``; empty when missing or unreadable (a first start, a Heartbeat
    state directory): the node then trusts the first packets it hears, as before."""
    try:
        with open(state_dir / PEERS_FILE, "rb") as f:
            data = json.loads(f.read(_MAX_PEERS_FILE))
    except (OSError, ValueError):
        return {}
    marks: dict[str, PeerMark] = {}
    peers = data.get("peers") if isinstance(data, dict) else None
    for name, mark in (peers or {}).items():
        if not isinstance(mark, dict):
            continue
        generation, seq = mark.get("generation"), mark.get("seq")
        if isinstance(name, str) and _natural(generation) and _natural(seq):
            marks[name] = PeerMark(generation=generation, seq=seq)
    return marks


def save_peer_marks(state_dir: Path, marks: Mapping[str, PeerMark]) -> None:
    """Replace ``pulse_peers`` atomically (a synced temporary file and a rename)."""
    peers = {name: {"generation": m.generation, "seq": m.seq} for name, m in marks.items()}
    data = json.dumps({"peers": peers}, sort_keys=True).encode() + b"\n"
    _write_atomically(state_dir / PEERS_FILE, data, mode=0o600)


def _natural(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
