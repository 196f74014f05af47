"""One ``pulse run`` per state directory: a lock held for the daemon's whole life.

Two daemons with the same state directory would share a generation counter and a
UUID, and both would claim the same floating addresses. ``pulse run`` therefore takes
an exclusive ``flock`` on ``pulse.pid`` in the state directory before it starts
anything, writes its PID there, and keeps the file open until it exits; the kernel
releases the lock when the process ends, however it ends, so a stale file never blocks
a restart. The descriptor is close-on-exec: resource scripts and respawned programs
do not inherit the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pulse.errors import PulseError

LOCK_FILE = "pulse.pid"


class AlreadyRunning(PulseError):
    """Another live pulse holds the lock of this state directory."""


@contextlib.contextmanager
def single_instance(state_dir: Path) -> Iterator[Path]:
    """Hold the state directory's lock; raises :class:`AlreadyRunning` if it is taken."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise AlreadyRunning(
                f"another pulse (PID {holder}) is running with state directory {state_dir}; "
                "stop it first, or give this one its own --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)
