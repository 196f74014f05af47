"""A crash at any point of a write leaves the old file or the new one, never a mix, and
a release after the crash still gives back the exact originals.

The crash is real: a forked child traces the plugin's file code line by line and
``os._exit``\\s at the N-th line, for every N until the child gets to the end.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pulse_asterisk.files
import pulse_asterisk.rebind
import pytest
from pulse_asterisk.files import BACKUP_SUFFIX, TEMP_SUFFIX, atomic_write
from pulse_asterisk.rebind import restore_files, rewrite_files
from pulse_asterisk.settings import AsteriskSettings

VIP = "198.51.100.100"
DATA = Path(__file__).parent / "data"
CRASHED = 77
TRACED = {pulse_asterisk.files.__file__, pulse_asterisk.rebind.__file__}
MAX_POINTS = 2000


def crash_at(n: int, action: Callable[[], object]) -> int:
    """Run *action* in a forked child that dies at the n-th traced line; exit status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        count = 0

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            nonlocal count
            if event == "line":
                count += 1
                if count == n:
                    os._exit(CRASHED)
            return local

        def tracer(frame: FrameType, event: str, arg: Any) -> Any:
            return local if frame.f_code.co_filename in TRACED else None

        try:
            sys.settrace(tracer)
            action()
            sys.settrace(None)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def every_crash(action: Callable[[], object], check: Callable[[int], None]) -> int:
    """Crash *action* at each traced line in turn, calling ``check(n)`` after each."""
    for n in range(1, MAX_POINTS):
        code = crash_at(n, action)
        if code == 0:
            return n
        assert code == CRASHED, f"the child failed at crash point {n} (exit {code})"
        check(n)
    raise AssertionError("the action never finished")


def test_a_crash_anywhere_in_atomic_write_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "manager.conf"
    old = b"[general]\nbindaddr = 127.0.0.1\n" * 50
    new = b"[general]\nbindaddr = 198.51.100.100\n" * 50
    seen: set[bytes] = set()

    def check(n: int) -> None:
        data = path.read_bytes()
        assert data in (old, new), f"crash point {n} left a mixed file"
        seen.add(data)
        path.write_bytes(old)
        for leftover in tmp_path.glob("*" + TEMP_SUFFIX):
            leftover.unlink()

    path.write_bytes(old)
    points = every_crash(lambda: atomic_write(str(path), new), check)
    assert points > 10
    assert seen == {old, new}  # crashes both before and after the rename were exercised
    assert path.read_bytes() == new


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    target = tmp_path / "asterisk"
    shutil.copytree(DATA / "asterisk", target)
    return target


@pytest.mark.slow
def test_a_crash_anywhere_in_a_takeover_then_release_restores_the_originals(
    confdir: Path,
) -> None:
    files = ("sip.conf", "iax.conf", "pjsip.conf")
    settings = AsteriskSettings(confdir=str(confdir), files=files, files_explicit=True)
    pristine = {p.name: p.read_bytes() for p in confdir.iterdir()}
    golden = {name: (DATA / "expected" / "asterisk" / name).read_bytes() for name in files}

    def check(n: int) -> None:
        for name in files:
            data = (confdir / name).read_bytes()
            assert data in (pristine[name], golden[name]), f"{name} mixed at crash point {n}"
            backup = confdir / (name + BACKUP_SUFFIX)
            if backup.exists():
                assert backup.read_bytes() == pristine[name], f"partial backup at {n}"
        restore_files(settings, VIP)
        assert {p.name: p.read_bytes() for p in confdir.iterdir()} == pristine, n

    points = every_crash(lambda: rewrite_files(settings, VIP), check)
    assert points > 30
    restore_files(settings, VIP)
    assert {p.name: p.read_bytes() for p in confdir.iterdir()} == pristine


@pytest.mark.slow
def test_a_crash_anywhere_in_a_release_is_finished_by_the_next_release(confdir: Path) -> None:
    files = ("sip.conf", "manager.conf")
    settings = AsteriskSettings(confdir=str(confdir), files=files, files_explicit=True)
    pristine = {p.name: p.read_bytes() for p in confdir.iterdir()}
    golden = {name: (DATA / "expected" / "asterisk" / name).read_bytes() for name in files}

    def check(n: int) -> None:
        for name in files:
            assert (confdir / name).read_bytes() in (pristine[name], golden[name]), n
        restore_files(settings, VIP)
        assert {p.name: p.read_bytes() for p in confdir.iterdir()} == pristine, n
        rewrite_files(settings, VIP)  # back to "held" for the next crash point

    rewrite_files(settings, VIP)
    every_crash(lambda: restore_files(settings, VIP), check)
    assert {p.name: p.read_bytes() for p in confdir.iterdir()} == pristine
