"""One pulse per state directory (src/pulse/instance.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pulse.instance import LOCK_FILE, AlreadyRunning, single_instance


def test_a_second_daemon_on_the_same_state_directory_is_refused_with_the_first_ones_pid(
    tmp_path: Path,
) -> None:
    with single_instance(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(AlreadyRunning, match=rf"another pulse \(PID {os.getpid()}\)"):
            with single_instance(tmp_path):
                pass


def test_the_lock_goes_with_the_daemon_and_a_stale_file_blocks_nothing(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("999999\n")  # left by a daemon killed with SIGKILL
    with single_instance(tmp_path):
        pass
    with single_instance(tmp_path / "new" / "dir"):  # created on demand
        pass
    with single_instance(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_the_lock_is_not_inherited_by_programs_the_daemon_starts(tmp_path: Path) -> None:
    with single_instance(tmp_path) as path:
        fds = os.listdir("/proc/self/fd")
        held = [fd for fd in fds if os.path.realpath(f"/proc/self/fd/{fd}") == str(path)]
        assert len(held) == 1
        assert os.get_inheritable(int(held[0])) is False
