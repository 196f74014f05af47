"""A kernel timer (Linux ``timerfd``) that trio waits on like a socket.

trio's own timers are cancel scopes: when one expires, trio raises ``Cancelled`` into
the sleeping task and unwinds it. That is cheap once, but an idle node at keepalive
100 ms does it ten times a second, and on a small virtual machine each of those
wake-ups costs about twice what a readable file descriptor does. The daemon's
heartbeat timer therefore sleeps on a ``timerfd`` when it runs on the real clock
(``pulse run``); under trio's ``MockClock`` (tests) it keeps trio's timers, which follow
virtual time.

``timerfd_create``/``timerfd_settime`` are called through ``ctypes`` (``os.timerfd_*``
only exist from Python 3.13); both are non-blocking system calls of a few microseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os

import trio

__all__ = ["KernelTimer"]

_CLOCK_MONOTONIC = 1  # the clock of time.perf_counter(), and so of trio's SystemClock
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_IDLE = 3600.0  # armed this far ahead when nothing is due (a disarmed timer is 0)


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class KernelTimer:
    """A one-shot monotonic timer: :meth:`arm` it, then ``await`` :meth:`wait`.

    Re-arming replaces the pending expiry (earlier or later), which is what the daemon
    does when a packet moves the engine's next deadline. It never fires early: the
    delay is counted from the moment it is armed, after it was computed.
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        )
        create = libc.timerfd_create
        create.argtypes = (ctypes.c_int, ctypes.c_int)
        fd = create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd: int = fd
        self._spec = _Itimerspec()
        self.armed_for: float | None = None  # the deadline last armed for, if the caller says

    @classmethod
    def open(cls) -> KernelTimer | None:
        """A new timer, or None where the C library has no timerfd (not Linux/glibc)."""
        try:
            return cls()
        except (OSError, AttributeError):
            return None

    def arm(self, delay: float) -> None:
        """Expire *delay* seconds from now (at once if <= 0; an hour ahead if infinite)."""
        if not delay < _IDLE:
            delay = _IDLE
        ns = max(1, math.ceil(delay * 1e9))  # 0 would disarm it
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(ns, 1_000_000_000)
        if self._settime(self.fd, 0, ctypes.byref(self._spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    async def wait(self) -> None:
        """Until the timer has expired (since it was last armed or waited for)."""
        while True:
            await trio.lowlevel.wait_readable(self.fd)  # at once if it already has
            try:
                os.read(self.fd, 8)  # the expiry count, which re-arming resets
            except BlockingIOError:
                continue  # re-armed while we were being woken: wait again
            return

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(RuntimeError):  # outside trio nobody can be waiting
                trio.lowlevel.notify_closing(self.fd)
            os.close(self.fd)
            self.fd = -1
