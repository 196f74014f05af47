"""systemd's notify protocol and the watchdog device (src/pulse/supervision.py), for real:
a datagram socket stands in for systemd, a FIFO for /dev/watchdog."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse.supervision import HardwareWatchdog, SystemdNotifier, WatchdogError


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(2)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(2)


def test_no_notify_socket_means_not_started_by_systemd() -> None:
    assert SystemdNotifier.from_environment({}) is None
    assert SystemdNotifier.from_environment({"NOTIFY_SOCKET": "relative"}) is None


def test_ready_status_watchdog_and_stopping_reach_the_notify_socket(
    systemd: socket.socket, tmp_path: Path
) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"}
    notifier = SystemdNotifier.from_environment(env)
    assert notifier is not None and notifier.watchdog_interval == 0.5
    notifier.ready("active, holds nothing")
    notifier.status("active, holds nothing")  # unchanged: not sent again
    notifier.status("active, holds web")
    for now in (10.0, 10.1, 10.4, 10.5, 10.9, 11.0):  # a heartbeat every ~100 ms
        notifier.heartbeat(now)
    notifier.stopping()
    notifier.close()
    assert received(systemd) == [
        "READY=1\nSTATUS=active, holds nothing",
        "STATUS=active, holds web",
        "WATCHDOG=1",  # 10.0
        "WATCHDOG=1",  # 10.5: a quarter of WatchdogSec later
        "WATCHDOG=1",  # 11.0
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_an_abstract_notify_socket_and_a_watchdog_for_another_pid(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(f"\0pulse-test-notify-{os.getpid()}")
    try:
        env = {
            "NOTIFY_SOCKET": f"@pulse-test-notify-{os.getpid()}",
            "WATCHDOG_USEC": "1000000",
            "WATCHDOG_PID": "1",  # the watchdog is meant for another process
        }
        notifier = SystemdNotifier.from_environment(env)
        assert notifier is not None and notifier.watchdog_interval is None
        notifier.ready("up")
        notifier.heartbeat(1.0)
        notifier.close()
        assert received(sock) == ["READY=1\nSTATUS=up"]
    finally:
        sock.close()


def test_a_notify_socket_nobody_listens_on_costs_a_warning_not_the_daemon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone"), None)
    notifier.ready("up")
    notifier.ready("up")
    notifier.close()
    assert notifier.failures == 2
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


def test_the_watchdog_device_is_fed_per_heartbeat_and_disarmed_with_v(tmp_path: Path) -> None:
    fifo = tmp_path / "watchdog"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        dog = HardwareWatchdog.open(str(fifo), deadtime_ms=3000)  # a FIFO has no ioctl
        for _ in range(3):
            dog.feed()
        dog.disarm()
        assert os.read(reader, 100) == b"\0\0\0V"
        assert dog.feeds == 3
    finally:
        os.close(reader)


def test_a_watchdog_device_that_cannot_be_opened_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(WatchdogError, match=r"watchdog .*/missing: cannot open it: .*softdog"):
        HardwareWatchdog.open(str(tmp_path / "missing"), deadtime_ms=3000)
