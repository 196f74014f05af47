"""Who may use the control socket: root, or the control group for read-only commands;
and a socket path that is somebody else's is never taken over."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pulse.control import server
from pulse.control.protocol import Reply, Request
from pulse.control.server import serve_control
from pulse.errors import TransportError

NOBODY = 65534  # uid of nobody and gid of nogroup on Debian


async def answer(request: Request) -> Reply:
    return Reply(True, f"{request.command} done")


async def serve_then_connect(path: Path) -> None:
    """Start serving at *path*, connect once, stop."""
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_control, path, answer))
        await connect_and_close(path)
        nursery.cancel_scope.cancel()


async def connect_and_close(path: Path) -> None:
    client = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await client.connect(str(path))
    client.close()


def as_nobody(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from pulse.cli.ctl import main; sys.exit(main())"
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            sys.executable, "-c", code, "-s", str(sock), *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory nobody can reach (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="pulse-ctl-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="root, setpriv")
async def test_a_member_of_the_control_group_may_read_status_but_not_run_standby(
    public_dir: Path,
) -> None:
    sock = public_dir / "run" / "control"
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_control, sock, answer, group="nogroup"))
        assert oct(sock.stat().st_mode & 0o777) == "0o660" and sock.stat().st_gid == NOBODY

        status = await trio.to_thread.run_sync(as_nobody, sock, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert status.stdout.strip() == '"status done"'
        standby = await trio.to_thread.run_sync(as_nobody, sock, "standby")
        assert standby.returncode == 4
        assert "standby needs root (uid 65534 may only run metrics, plugins, status)" in (
            standby.stderr
        )
        nursery.cancel_scope.cancel()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="root, setpriv")
async def test_without_a_control_group_only_root_can_connect(public_dir: Path) -> None:
    sock = public_dir / "run" / "control"
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_control, sock, answer))
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        status = await trio.to_thread.run_sync(as_nobody, sock, "status")
        assert status.returncode == 4 and "Permission denied" in status.stderr
        nursery.cancel_scope.cancel()


async def test_a_regular_file_at_the_socket_path_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "control"
    path.write_text("precious\n")
    with pytest.raises(TransportError, match="exists and is not a socket"):
        await serve_control(path, answer)
    assert path.read_text() == "precious\n"


async def test_a_socket_another_daemon_answers_on_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "control"
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_control, path, answer))
        with pytest.raises(TransportError, match="is in use: another pulse answers on it"):
            await serve_control(path, answer)
        assert path.exists(), "the running daemon keeps its socket"
        nursery.cancel_scope.cancel()


async def test_a_stale_socket_left_by_a_killed_daemon_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "control"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # bound, never listening: what a SIGKILL leaves
    await serve_then_connect(path)


async def test_the_socket_path_appears_only_once_the_daemon_accepts_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "control"
    seen_while_preparing: list[bool] = []
    permit = server._permit

    def slow_permit(staged: Path, group: str | None) -> None:
        seen_while_preparing.append(path.exists())
        permit(staged, group)

    monkeypatch.setattr(server, "_permit", slow_permit)
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_control, path, answer))
        assert seen_while_preparing == [False]
        await connect_and_close(path)
        assert sorted(os.listdir(tmp_path)) == ["control"], "no staging name left"
        nursery.cancel_scope.cancel()


async def test_of_two_daemons_starting_at_once_the_second_fails_and_leaves_the_first_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "control"
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_control, path, answer))
        monkeypatch.setattr(server, "_clear", lambda _path: None)  # it looked too early
        with pytest.raises(TransportError, match=r"cannot create control socket .*File exists"):
            await serve_control(path, answer)
        assert sorted(os.listdir(tmp_path)) == ["control"]
        await connect_and_close(path)
        nursery.cancel_scope.cancel()


async def test_a_socket_path_at_the_address_limit_is_bound_where_it_is(tmp_path: Path) -> None:
    room = server.SUN_PATH_MAX - len(os.fsencode(tmp_path)) - 1
    path = tmp_path / ("c" * room)  # exactly the limit: no longer staging name would fit
    await serve_then_connect(path)


async def test_on_a_file_system_without_hard_links_the_ready_socket_is_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(_src: object, _dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(server.os, "link", no_links)
    path = tmp_path / "control"
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_control, path, answer))
        await connect_and_close(path)
        assert sorted(os.listdir(tmp_path)) == ["control"]
        nursery.cancel_scope.cancel()
