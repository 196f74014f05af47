"""Being watched: systemd's notify protocol and a hardware watchdog device.

Both are fed from the heartbeat loop (``Comms._tick_if_due``, :mod:`pulse.comms`), right after
the engine sent our status, so a loop that stops sending heartbeats also stops
feeding them: systemd restarts the service (``WatchdogSec=``), the watchdog device
reboots the machine, as Heartbeat's ``watchdog`` directive does.

* **systemd** (``Type=notify``, see contrib/systemd/pulse.service): datagrams to
  ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket): ``READY=1`` once
  communications are up, ``STATUS=`` lines a human can read, ``WATCHDOG=1`` at least
  four times per ``$WATCHDOG_USEC``, ``RELOADING=1``/``READY=1`` around a reload and
  ``STOPPING=1`` at shutdown. Sends never block and never fail the daemon.
* **watchdog DEVICE** (ha.cf): opened at start with its timeout set to the deadtime
  rounded up to whole seconds plus one (``WDIOC_SETTIMEOUT``, as Heartbeat's
  ``hb_init_watchdog``; ignored by devices without the ioctl), one byte written per
  status we send, and the magic ``V`` written on a clean stop so the kernel disarms
  it. A crash leaves it armed: the machine reboots when the timeout runs out.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import math
import os
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pulse.errors import PulseError

log = logging.getLogger("pulse")

WDIOC_SETTIMEOUT = 0xC0045706  # _IOWR('W', 6, int), linux/watchdog.h


class SystemdNotifier:
    """``sd_notify`` without libsystemd: one datagram per message, best effort."""

    def __init__(self, address: str, watchdog_interval: float | None) -> None:
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        #: seconds between two WATCHDOG=1 (a quarter of WatchdogSec), None: not asked for
        self.watchdog_interval = watchdog_interval
        self._last_watchdog = -math.inf
        self._status = ""
        self.failures = 0

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> SystemdNotifier | None:
        """The notifier systemd asked for, or None when not started by systemd."""
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        if not address or not (address.startswith(("/", "@"))):
            return None
        interval: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 1e6 / 4
        return cls(address, interval)

    def notify(self, *lines: str) -> None:
        try:
            self._sock.sendto("\n".join(lines).encode("utf-8", "replace"), self._address)
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("cannot notify systemd at %s: %s", self._address, exc)

    def ready(self, status: str) -> None:
        self._status = status
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self.notify(f"STATUS={status}")

    def heartbeat(self, now: float) -> None:
        """Our status went out: tell systemd's watchdog, at most four times per period."""
        interval = self.watchdog_interval
        if interval is not None and now - self._last_watchdog >= interval:
            self._last_watchdog = now
            self.notify("WATCHDOG=1")

    def reloading(self) -> None:
        self.notify("RELOADING=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        self._sock.close()


class WatchdogError(PulseError):
    """The watchdog device of ha.cf's ``watchdog`` line cannot be used."""


class HardwareWatchdog:
    """ha.cf's ``watchdog DEVICE``: fed once per status sent, disarmed on a clean stop."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self.feeds = 0
        self.failures = 0

    @classmethod
    def open(cls, path: str, *, deadtime_ms: int) -> HardwareWatchdog:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            hint = (
                " (load a driver, e.g. modprobe softdog, or remove the watchdog line)"
                if exc.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV)
                else ""
            )
            raise WatchdogError(f"watchdog {path}: cannot open it: {exc.strerror}{hint}") from None
        seconds = math.ceil((deadtime_ms + 10) / 1000) + 1
        try:
            fcntl.ioctl(fd, WDIOC_SETTIMEOUT, struct.pack("i", seconds))
        except OSError:
            log.debug("watchdog %s: no WDIOC_SETTIMEOUT; keeping its own timeout", path)
        else:
            log.info("watchdog %s: timeout set to %d s", path, seconds)
        return cls(path, fd)

    def feed(self) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, b"\0")
            self.feeds += 1
        except OSError as exc:  # a full pipe (a fake device), an I/O error: say it once
            self.failures += 1
            if self.failures == 1:
                log.error("watchdog %s: cannot feed it: %s", self.path, exc.strerror)

    def disarm(self) -> None:
        """Clean stop: the magic close, so the kernel does not reboot the machine."""
        if self._fd is None:
            return
        try:
            os.write(self._fd, b"V")
        except OSError as exc:
            log.error("watchdog %s: cannot disarm it: %s", self.path, exc.strerror)
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(slots=True)
class Watchers:
    """Whoever watches this daemon: fed from the heartbeat path (:mod:`pulse.comms`).

    ``describe`` says what the node is doing in a few words (systemd's ``STATUS=``).
    The watchdog device is opened last at start-up (a daemon that fails to start must
    not reboot the machine), so it is set once the daemon is up.
    """

    describe: Callable[[], str]
    notifier: SystemdNotifier | None = None
    watchdog: HardwareWatchdog | None = None

    def ready(self) -> None:
        if self.notifier is not None:
            self.notifier.ready(self.describe())

    def fed(self, now: float) -> None:
        """Our status just went out."""
        if self.watchdog is not None:
            self.watchdog.feed()
        if self.notifier is not None:
            self.notifier.heartbeat(now)
            self.notifier.status(self.describe())

    def reloading(self) -> None:
        if self.notifier is not None:
            self.notifier.reloading()

    def stopping(self) -> None:
        if self.notifier is not None:
            self.notifier.stopping()

    def clean_stop(self) -> None:
        """A clean stop: the machine must not reboot."""
        if self.watchdog is not None:
            self.watchdog.disarm()

    def close(self) -> None:
        """Not disarmed unless the stop was clean: the device stays armed."""
        if self.watchdog is not None:
            self.watchdog.close()
        if self.notifier is not None:
            self.notifier.close()
