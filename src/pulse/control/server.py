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
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from pulse.control.protocol import MAX_REQUEST, Reply, Request
from pulse.errors import TransportError

log = logging.getLogger("pulse.control")

Handler = Callable[[Request], Awaitable[Reply]]
CLIENT_TIMEOUT = 10.0  # a whole connection, the command's work included
REQUEST_TIMEOUT = 2.0  # from connect to the end of the request line (pulsectl: at once)
BACKLOG = 512  # connections the kernel queues before accept (net.core.somaxconn caps it)
MAX_CLIENTS = 64  # connections served at once


class _RequestTooLong(ValueError):
    pass


def _clear(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _listen(path: Path) -> trio.socket.SocketType:
    await trio.to_thread.run_sync(_clear, path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(os.fspath(path))
    await trio.to_thread.run_sync(os.chmod, path, 0o600)  # root-only by default
    sock.listen(BACKLOG)
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


async def _reply_to(line: bytes | ValueError, handler: Handler) -> Reply:
    try:
        if isinstance(line, ValueError):
            raise line
        return await handler(Request.decode(line))
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
    path: Path, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Answer one request per connection until cancelled; removes the socket file on exit."""
    try:
        sock = await _listen(path)
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
                    reply = await _reply_to(line, handler)
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
