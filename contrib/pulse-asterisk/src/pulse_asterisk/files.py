"""Writing configuration files so that a crash leaves the old file or the new one.

These functions block (they fsync); the agent calls them through
``trio.to_thread.run_sync``.

:func:`atomic_write`: a temporary file in the same directory (``.NAME.XXXX.pulse-tmp``),
written, given the original's mode and owner, fsynced, renamed over the file, and the
directory fsynced. A symlink is followed: the file it points to is replaced, the link
stays.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import stat
import tempfile

log = logging.getLogger("pulse.asterisk")

BACKUP_SUFFIX = ".pulse-orig"
EDITED_SUFFIX = ".pulse-edited"
TEMP_SUFFIX = ".pulse-tmp"


def backup_path(path: str) -> str:
    return path + BACKUP_SUFFIX


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, like: str | None = None) -> None:
    """Replace *path* with *data* atomically, keeping the mode and owner of *like*
    (default: *path* itself; a new file gets 0644 and the caller's owner)."""
    real = os.path.realpath(path)
    directory = os.path.dirname(real) or "."
    try:
        st: os.stat_result | None = os.stat(like if like is not None else real)
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(real)}.", suffix=TEMP_SUFFIX, dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if st is not None:
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
                if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(f.fileno(), st.st_uid, st.st_gid)
                    except PermissionError:
                        log.warning(
                            "%s: cannot give the new file owner %d:%d (not root); it is "
                            "owned by %d:%d now",
                            path,
                            st.st_uid,
                            st.st_gid,
                            os.geteuid(),
                            os.getegid(),
                        )
            else:
                os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def remove_durably(path: str) -> None:
    real = os.path.realpath(path) if not os.path.islink(path) else path
    with contextlib.suppress(FileNotFoundError):
        os.unlink(real)
        _fsync_dir(os.path.dirname(real) or ".")


def clean_stale_temps(path: str) -> list[str]:
    """Remove temporary files a crash left next to *path* (only pulse's own names)."""
    real = os.path.realpath(path)
    directory = os.path.dirname(real) or "."
    pattern = os.path.join(glob.escape(directory), f".{glob.escape(os.path.basename(real))}.*")
    removed = []
    for leftover in glob.glob(pattern + TEMP_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
            removed.append(leftover)
    return removed
