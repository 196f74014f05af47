"""The daemon side of the control socket (a trio task).

Built to keep answering a real ``pulsectl`` while other clients misbehave
(docs/hostile-input.md): a deep listen backlog, a request-size cap and a nesting cap
(a clear error reply, no traceback), a short idle timeout for the request line, and
from :data:`MAX_CLIENTS` open connections on, the oldest one still silent making room
for a new one.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import grp
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from pulse.control.access import Peer, peer_of, refusal
from pulse.control.protocol import MAX_REQUEST, Reply, Request
from pulse.errors import TransportError

log = logging.getLogger("pulse.control")

Handler = Callable[[Request], Awaitable[Reply]]
CLIENT_TIMEOUT = 10.0  # a whole connection, the command's work included
REQUEST_TIMEOUT = 2.0  # from connect to the end of the request line (pulsectl: at once)
BACKLOG = 512  # connections the kernel queues before accept (net.core.somaxconn caps it)
MAX_CLIENTS = 64  # connections served at once
SUN_PATH_MAX = 107  # bytes of a socket path, without its NUL (sockaddr_un.sun_path)


class _RequestTooLong(ValueError):
    pass


def _clear(path: Path) -> None:
    """Make room for our socket: only a stale socket (nobody answers on it) is removed.

    Anything else at that path is somebody else's: a file the path was pointed at by
    mistake, or the socket of a daemon that is running.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise TransportError(
            f"control socket {path} exists and is not a socket; "
            "remove it or give another --control-socket"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # nobody listens: left behind by a daemon that was killed
    except OSError as exc:
        raise TransportError(f"control socket {path}: {exc.strerror}") from None
    else:
        raise TransportError(
            f"control socket {path} is in use: another pulse answers on it "
            "(stop it, or give this one another --control-socket)"
        )
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _permit(path: Path, group: str | None) -> None:
    if group is None:
        os.chmod(path, 0o600)  # root-only by default
        return
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise TransportError(f"control group {group}: no such group") from None
    os.chown(path, -1, gid)
    os.chmod(path, 0o660)
    # The directory must let the group reach the socket (it is made 0700 by default).
    mode = stat.S_IMODE(path.parent.stat().st_mode)
    if path.parent.stat().st_uid == os.geteuid() and not mode & stat.S_IXGRP:
        os.chown(path.parent, -1, gid)
        os.chmod(path.parent, mode | stat.S_IXGRP)


def _staging(path: Path) -> Path:
    """Where the socket is made ready before it appears at *path*: the same directory
    (a hard link cannot cross file systems), a name of this process, or *path* itself
    when that name would not fit in a socket address."""
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    return staging if len(os.fsencode(staging)) <= SUN_PATH_MAX else path


def _publish(staging: Path, path: Path) -> None:
    """Make the ready socket at *staging* appear at *path* (see :func:`_listen`)."""
    if staging == path:
        return
    try:
        os.link(staging, path)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        os.rename(staging, path)  # a file system without hard links; _clear ran
    else:
        os.unlink(staging)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


async def _listen(path: Path, group: str | None) -> trio.socket.SocketType:
    """A listening socket that appears at *path* only once it accepts connections.

    Bound, permitted and listening under a staging name first, then linked to *path*:
    whoever sees the file (``pulsectl``, an init script waiting for it, the test lab)
    can connect at once, never meeting a refusal from a socket not yet listening. The
    link fails if *path* exists, as a bind there would: two daemons never share it.
    """
    await trio.to_thread.run_sync(_clear, path)
    staging = _staging(path)
    if staging != path:
        await trio.to_thread.run_sync(_unlink, staging)  # left by a killed process with our pid
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(staging))
    except BaseException:
        sock.close()  # the file there, if any, is not ours
        raise
    try:
        await trio.to_thread.run_sync(_permit, staging, group)
        sock.listen(BACKLOG)
        await trio.to_thread.run_sync(_publish, staging, path)
    except BaseException:
        sock.close()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_unlink, staging)
        raise
    return sock


async def _read_line(stream: trio.SocketStream) -> bytes:
    buf = bytearray()
    while b"\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_REQUEST and b"\n" not in buf[: MAX_REQUEST + 1]:
            raise _RequestTooLong(f"request longer than {MAX_REQUEST} bytes")
    return bytes(buf.split(b"\n", 1)[0])


async def _reply_to(line: bytes | ValueError, handler: Handler, peer: Peer | None) -> Reply:
    try:
        if isinstance(line, ValueError):
            raise line
        request = Request.decode(line)
        refused = refusal(request.command, peer)
        if refused is not None:
            return Reply(False, error=refused)
        return await handler(request)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return Reply(False, error=f"bad request: {exc}")
    except Exception as exc:  # a handler bug must not kill the daemon
        log.exception("control request failed")
        return Reply(False, error=f"internal error: {exc}")


class _Clients:
    """The connections being served; those still waiting for their request line can be
    dropped, oldest first, to make room for a new one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.waiting: collections.OrderedDict[int, trio.CancelScope] = collections.OrderedDict()
        self.dropped = 0

    def make_room(self) -> None:
        while self.count >= self.limit and self.waiting:
            _, scope = self.waiting.popitem(last=False)
            scope.cancel()
            self.dropped += 1
            self.count -= 1


async def serve_control(
    path: Path,
    handler: Handler,
    *,
    group: str | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer one request per connection until cancelled; removes the socket file on exit.

    With *group*, its members may connect and run the read-only commands
    (:mod:`pulse.control.access`).
    """
    try:
        sock = await _listen(path, group)
    except OSError as exc:
        raise TransportError(f"cannot create control socket {path}: {exc.strerror}") from exc
    clients = _Clients(MAX_CLIENTS)

    async def handle(stream: trio.SocketStream) -> None:
        clients.make_room()
        clients.count += 1
        counted = True
        key = id(stream)
        try:
            async with stream:
                with trio.move_on_after(CLIENT_TIMEOUT):
                    with trio.CancelScope(deadline=trio.current_time() + REQUEST_TIMEOUT) as wait:
                        clients.waiting[key] = wait
                        line: bytes | ValueError = b""
                        try:
                            line = await _read_line(stream)
                        except _RequestTooLong as exc:
                            line = exc
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            return
                        finally:
                            if clients.waiting.pop(key, None) is None:
                                counted = False  # make_room dropped it, and uncounted it
                    if wait.cancelled_caught:
                        return  # silent for too long, or dropped for a newer client
                    reply = await _reply_to(line, handler, peer_of(stream.socket))
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await stream.send_all(reply.encode())
        finally:
            if counted:
                clients.count -= 1

    try:
        listener = trio.SocketListener(sock)
        task_status.started()
        await trio.serve_listeners(handle, [listener])
    finally:
        with trio.CancelScope(shield=True):
            try:
                await trio.Path(path).unlink()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.warning("could not remove control socket %s: %s", path, exc)
