"""The daemon side of the control socket (a trio task)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from pulse.control.protocol import MAX_LINE, Reply, Request
from pulse.errors import TransportError

log = logging.getLogger("pulse.control")

Handler = Callable[[Request], Awaitable[Reply]]
CLIENT_TIMEOUT = 10.0


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
    sock.listen(16)
    return sock


async def _read_line(stream: trio.SocketStream) -> bytes:
    buf = bytearray()
    while b"\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_LINE:
            raise ValueError("request too long")
    return bytes(buf.split(b"\n", 1)[0])


async def serve_control(
    path: Path, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Answer one request per connection until cancelled; removes the socket file on exit."""
    try:
        sock = await _listen(path)
    except OSError as exc:
        raise TransportError(f"cannot create control socket {path}: {exc.strerror}") from exc

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            with trio.move_on_after(CLIENT_TIMEOUT):
                try:
                    line = await _read_line(stream)
                    request = Request.decode(line)
                    reply = await handler(request)
                except (ValueError, UnicodeDecodeError) as exc:
                    reply = Reply(False, error=f"bad request: {exc}")
                except Exception as exc:  # a handler bug must not kill the daemon
                    log.exception("control request failed")
                    reply = Reply(False, error=f"internal error: {exc}")
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(reply.encode())

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
