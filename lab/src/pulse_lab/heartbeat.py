"""Run real Heartbeat 3.0.6 daemons in lab namespaces (interop tests, bench/compare).

Heartbeat hard-codes its paths (``/etc/ha.d``, ``/var/lib/heartbeat``, ``/run/heartbeat``,
``/run/heartbeat.pid``), so two instances cannot share one machine as they are. Each
:class:`HeartbeatNode` therefore runs its daemon inside the network namespace of a
:class:`~pulse_lab.netns.Topology` node **and** inside a private mount namespace in which three
directories of the test's ``workdir`` are bind-mounted over those paths::

    workdir/ha.d  ->  /etc/ha.d            ha.cf, haresources, authkeys, nodeinfo, plus
                                           copies of harc, shellfuncs, rc.d/, resource.d/
    workdir/lib   ->  /var/lib/heartbeat   hb_generation, hb_uuid, hostcache, fifo, cores/
    workdir/run   ->  /run (= /var/run)    heartbeat/ (register socket, rsctmp), heartbeat.pid

The name comes from ``nodeinfo`` (docs/heartbeat.md#node-identity), so names such as ``hb1`` work
without touching the hostname. The mounts live only as long as the namespace's processes:
once every heartbeat process is gone the kernel drops them, so nothing on the host is ever
modified. The launcher script refuses to exec heartbeat unless it sees a per-node marker
file through ``/etc/ha.d`` -- a failed bind mount can never make a test read or write the
machine's real configuration.

``cl_status`` talks to heartbeat over ``/run/heartbeat/register``; it is run with
``nsenter -t <heartbeat pid> -m -n`` so that it sees the same private ``/run``.

This module is synchronous on purpose: it drives external daemons with bounded polling
(every wait has an explicit timeout) and is used from plain pytest test functions.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pulse_lab.netns import Node, Topology

HEARTBEAT_BIN = Path("/usr/libexec/heartbeat/heartbeat")
CL_STATUS_BIN = Path("/usr/bin/cl_status")
HB_STANDBY_BIN = Path("/usr/share/heartbeat/hb_standby")
HB_TAKEOVER_BIN = Path("/usr/share/heartbeat/hb_takeover")
SYSTEM_HA_D = Path("/etc/ha.d")

# Files of the real /etc/ha.d that heartbeat and its scripts need at run time. They are
# copied (never modified) into each node's private /etc/ha.d.
_SHIPPED_HA_D = ("harc", "shellfuncs", "rc.d", "resource.d")

# Directories bind-mounted over the hard-coded paths, relative to the node's workdir.
_MOUNTS = (("ha.d", "/etc/ha.d"), ("lib", "/var/lib/heartbeat"), ("run", "/run"))

_POLL_INTERVAL = 0.1
_CL_STATUS_TIMEOUT = 5.0
_START_TIMEOUT = 10.0
_KILL_TIMEOUT = 5.0


class HeartbeatPeerError(RuntimeError):
    """A Heartbeat peer did not behave as the harness needed (start failure, timeout...)."""


class _Process(Protocol):
    """The part of :class:`subprocess.Popen` the harness relies on."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def missing_prerequisites() -> list[str]:
    """Why real Heartbeat nodes cannot run here (empty list when they can).

    Meant for ``pytest.skip``: needs root, Debian's heartbeat package (binary, cl_status,
    the ``hacluster`` user and ``haclient`` group it creates) and util-linux's
    ``unshare``/``nsenter``.
    """
    reasons: list[str] = []
    if os.geteuid() != 0:
        reasons.append("not running as root")
    for binary in (HEARTBEAT_BIN, CL_STATUS_BIN):
        if not os.access(binary, os.X_OK):
            reasons.append(f"{binary} is not installed")
    for tool in ("ip", "unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            reasons.append(f"{tool} not found")
    try:
        pwd.getpwnam("hacluster")
        grp.getgrnam("haclient")
    except KeyError:
        reasons.append("user hacluster / group haclient missing (install heartbeat)")
    return reasons


# --------------------------------------------------------------------------------------
# Pure helpers: ha.cf rendering and inspection
# --------------------------------------------------------------------------------------


def render_ha_cf(
    *,
    nodes: Sequence[str],
    media: Sequence[str],
    logdir: Path,
    keepalive: str = "1",
    deadtime: str = "3",
    warntime: str = "2",
    initdead: str = "6",
    udpport: int = 694,
    auto_failback: str = "on",
    extra: Sequence[str] = (),
) -> str:
    """An ``ha.cf`` suitable for tests: short timers, no realtime, logs under ``logdir``.

    ``media`` are complete medium lines (``"bcast eth0"``, ``"ucast eth0 198.51.100.2"``).
    ``udpport`` is written before them, as heartbeat requires
    (docs/heartbeat.md#hacf-ordering-quirks). The log file is
    ``logdir/ha-log`` and the debug file ``logdir/ha-debug``.
    """
    lines = [
        f"logfile {logdir / 'ha-log'}",
        f"debugfile {logdir / 'ha-debug'}",
        f"udpport {udpport}",
        *media,
        f"keepalive {keepalive}",
        f"deadtime {deadtime}",
        f"warntime {warntime}",
        f"initdead {initdead}",
        f"auto_failback {auto_failback}",
        "realtime off",
        "coredumps off",
        *extra,
        "node " + " ".join(nodes),
    ]
    return "\n".join(lines) + "\n"


def ha_cf_value(ha_cf: str, directive: str) -> str | None:
    """The value heartbeat keeps for per-token ``directive`` (docs/heartbeat.md#hacf-reading-rules).

    Comments run from ``#`` to the end of the line; tokens are separated by commas or
    whitespace and each is applied in turn, so the last token of the last line wins.
    """
    value: str | None = None
    for raw in ha_cf.splitlines():
        tokens = [t for t in re.split(r"[,\s]+", raw.split("#", 1)[0]) if t]
        if len(tokens) >= 2 and tokens[0] == directive:
            value = tokens[-1]
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerLayout:
    """Where a node's private files live on the host."""

    workdir: Path

    @property
    def ha_d(self) -> Path:
        return self.workdir / "ha.d"

    @property
    def lib(self) -> Path:
        return self.workdir / "lib"

    @property
    def run(self) -> Path:
        return self.workdir / "run"

    @property
    def launcher_output(self) -> Path:
        """stdout/stderr of the launcher and of heartbeat itself (config errors go here)."""
        return self.workdir / "heartbeat.out"

    @property
    def pidfile(self) -> Path:
        return self.run / "heartbeat.pid"

    def host_path(self, inside: str) -> Path:
        """Translate a path as heartbeat sees it into the path on the host."""
        path = Path(inside)
        for local, target in (*_MOUNTS, ("run", "/var/run")):
            try:
                return self.workdir / local / path.relative_to(target)
            except ValueError:
                continue
        return path


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------
# Process helpers
# --------------------------------------------------------------------------------------


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pids_in_mount_ns(ns: str) -> list[int]:
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _mount_ns(int(entry.name)) == ns:
            pids.append(int(entry.name))
    return pids


def _is_heartbeat(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/exe").resolve() == HEARTBEAT_BIN.resolve()
    except OSError:
        return False


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _poll_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Call ``predicate`` every poll interval until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClStatusResult:
    """One ``cl_status`` invocation. Its exit code carries meaning (e.g. hbstatus: 1 = stopped)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class HeartbeatNode:
    """One real Heartbeat 3.0.6 daemon running on a :class:`~pulse_lab.netns.Topology` node.

    ``ha_cf`` must contain a ``logfile`` directive pointing inside ``workdir`` (or inside
    one of the private paths, e.g. ``/var/lib/heartbeat/ha-log``); :func:`render_ha_cf`
    builds such a file. ``authkeys`` is written with mode 0600 unless ``authkeys_mode``
    says otherwise (heartbeat refuses group/other-readable keys, docs/heartbeat.md#authkeys).
    """

    def __init__(
        self,
        topology: Topology,
        node: Node,
        *,
        name: str,
        ha_cf: str,
        haresources: str = "",
        authkeys: str,
        workdir: Path,
        authkeys_mode: int = 0o600,
    ) -> None:
        self.topology = topology
        self.node = node
        self.name = name
        self.ha_cf = ha_cf
        self.haresources = haresources
        self.authkeys = authkeys
        self.authkeys_mode = authkeys_mode
        self.layout = PeerLayout(workdir=Path(workdir).resolve())
        self._process: _Process | None = None
        self._mount_ns: str | None = None
        logfile = ha_cf_value(ha_cf, "logfile")
        if logfile is None:
            raise ValueError("ha_cf needs a 'logfile' directive so the harness can read the log")
        self.logfile = self._private_path(logfile, "logfile")
        debugfile = ha_cf_value(ha_cf, "debugfile")
        self.debugfile = None if debugfile is None else self._private_path(debugfile, "debugfile")

    def _private_path(self, inside: str, directive: str) -> Path:
        path = self.layout.host_path(inside)
        if not path.is_absolute() or not _is_within(path, self.layout.workdir):
            raise ValueError(
                f"{directive} {inside} would be written outside {self.layout.workdir}; "
                "keep heartbeat's files inside the node's workdir"
            )
        return path

    # ---- lifecycle ---------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """PID of heartbeat's master control process (valid after :meth:`start`).

        Heartbeat restarts itself when a partition heals ("Heartbeat restart
        triggered"): the new master daemonizes, so the started process exits and the
        master is then the heartbeat process its pid file names, in the same private
        mount namespace.
        """
        if self._process is None:
            raise HeartbeatPeerError(f"heartbeat {self.name} was never started")
        if self._process.poll() is None:
            return self._process.pid
        restarted = self._restarted_pid()
        return self._process.pid if restarted is None else restarted

    @property
    def running(self) -> bool:
        if self._process is None:
            return False
        return self._process.poll() is None or self._restarted_pid() is not None

    def _restarted_pid(self) -> int | None:
        """The master after a self-restart: named by the pid file, a heartbeat binary,
        in this node's mount namespace (never a stranger with a recycled pid)."""
        if self._mount_ns is None:
            return None
        try:
            pid = int(self.layout.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if _is_heartbeat(pid) and _mount_ns(pid) == self._mount_ns:
            return pid
        return None

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Prepare the private tree and start ``heartbeat -f``; return once it runs.

        "Runs" means heartbeat validated its configuration and wrote its pid file; a
        configuration error raises :class:`HeartbeatPeerError` with heartbeat's output.
        Generation number and UUID persist in ``workdir/lib`` across restarts.
        """
        if self.running:
            raise HeartbeatPeerError(f"heartbeat {self.name} is already running")
        self._prepare_tree()
        self.layout.pidfile.unlink(missing_ok=True)
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", self._launcher()]
        # Launcher, mount and heartbeat output all land in one file the diagnostics show.
        with self.layout.launcher_output.open("ab") as output:
            process = self.topology.popen(
                self.node, argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output
            )
        self._process = process
        self._mount_ns = None

        def ready() -> bool:
            if process.poll() is not None:
                return True
            try:
                return self.layout.pidfile.read_text().strip() == str(process.pid)
            except OSError:
                return False

        if not _poll_until(ready, timeout):
            self.kill()
            raise HeartbeatPeerError(
                f"heartbeat {self.name} did not write its pid file within {timeout} s\n"
                + self._diagnostics()
            )
        if process.poll() is not None:
            raise HeartbeatPeerError(
                f"heartbeat {self.name} exited with {process.poll()} during start-up\n"
                + self._diagnostics()
            )
        # The pid file is written by heartbeat itself, so the launcher has exec'd into it and
        # its mount namespace is the private one every child will share.
        self._mount_ns = _mount_ns(process.pid)

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful shutdown (SIGTERM, as ``heartbeat -k`` does); wait for every process.

        Heartbeat releases its resources and tells its peers before exiting, which takes
        a few seconds. If it is not gone within ``timeout`` it is killed and
        :class:`HeartbeatPeerError` is raised.
        """
        process = self._process
        if process is None or process.poll() is not None:
            self._reap_namespace()
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HeartbeatPeerError(
                f"heartbeat {self.name} did not stop within {timeout} s of SIGTERM\n"
                + self._diagnostics()
            ) from None
        self._reap_namespace()

    def kill(self) -> None:
        """SIGKILL the master and every other process of this node at once (a node crash)."""
        process = self._process
        if process is None:
            return
        if self._mount_ns is None and process.poll() is None and _is_heartbeat(process.pid):
            self._mount_ns = _mount_ns(process.pid)
        # The master is in the namespace too, so a known namespace means one sweep kills all.
        self._reap_namespace()
        if process.poll() is None:
            _signal(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout=_KILL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise HeartbeatPeerError(f"heartbeat {self.name} survived SIGKILL") from None

    def close(self) -> None:
        """Make sure nothing of this node is left running (idempotent; for fixtures)."""
        self.kill()

    def _reap_namespace(self) -> None:
        """SIGKILL whatever is still left in the node's private mount namespace."""
        ns = self._mount_ns
        if ns is None:
            return

        def gone() -> bool:
            pids = _pids_in_mount_ns(ns)
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            return not pids

        if not _poll_until(gone, _KILL_TIMEOUT):
            raise HeartbeatPeerError(f"processes of heartbeat {self.name} survived SIGKILL")
        # The namespace is gone; forget it so a later sweep can never hit a namespace that
        # the kernel has since given the same inode number.
        self._mount_ns = None

    # ---- files -------------------------------------------------------------------------

    def _prepare_tree(self) -> None:
        layout = self.layout
        hacluster = pwd.getpwnam("hacluster").pw_uid
        haclient = grp.getgrnam("haclient").gr_gid
        layout.workdir.mkdir(parents=True, exist_ok=True)
        layout.ha_d.mkdir(exist_ok=True)
        for entry in _SHIPPED_HA_D:
            source, target = SYSTEM_HA_D / entry, layout.ha_d / entry
            if target.exists() or not source.exists():
                continue
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True)
            else:
                shutil.copy2(source, target)
        (layout.ha_d / "ha.cf").write_text(self.ha_cf)
        (layout.ha_d / "haresources").write_text(self.haresources)
        authkeys = layout.ha_d / "authkeys"
        authkeys.write_text(self.authkeys)
        authkeys.chmod(self.authkeys_mode)
        (layout.ha_d / "nodeinfo").write_text(self.name + "\n")
        (layout.ha_d / self._marker_name).write_text("")
        for user in ("root", "hacluster", "nobody"):
            (layout.lib / "cores" / user).mkdir(parents=True, exist_ok=True)
        # What Debian's tmpfiles.d creates in /run at boot (heartbeat.conf, resource-agents).
        for sub, mode, owned in (
            ("", 0o755, False),
            ("heartbeat", 0o750, True),
            ("heartbeat/ccm", 0o750, True),
            ("heartbeat/crm", 0o750, True),
            ("heartbeat/dopd", 0o750, True),
            ("crm", 0o750, True),
            ("resource-agents", 0o1755, False),
            ("lock", 0o1777, False),
        ):
            path = layout.run / sub
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)
            if owned:
                os.chown(path, hacluster, haclient)
        for logfile in (self.logfile, self.debugfile):
            if logfile is not None:
                logfile.parent.mkdir(parents=True, exist_ok=True)

    @property
    def _marker_name(self) -> str:
        return f".pulse-harness-{self.name}"

    def _launcher(self) -> str:
        """The shell run inside the node's namespaces: mount, verify, exec heartbeat."""
        q = shlex.quote
        steps = ["set -e"]
        for local, target in _MOUNTS:
            steps.append(f"mount --bind {q(str(self.layout.workdir / local))} {target}")
        steps.append(f"test -e /etc/ha.d/{q(self._marker_name)}")
        steps.append(f"exec {q(str(HEARTBEAT_BIN))} -f")
        return "\n".join(steps)

    def log(self) -> str:
        """Heartbeat's log file (``logfile`` in ha.cf) as it is now; empty if not yet written."""
        return _read(self.logfile)

    def debug_log(self) -> str:
        """Heartbeat's debug file (``debugfile`` in ha.cf); empty if none is configured."""
        return "" if self.debugfile is None else _read(self.debugfile)

    def mark(self) -> int:
        """Current length of the log, to wait only for lines written after this point."""
        return len(self.log())

    def log_lines(self, pattern: str, *, since: int = 0) -> list[str]:
        """Log lines (after offset ``since``) in which regex ``pattern`` matches."""
        regex = re.compile(pattern)
        return [line for line in self.log()[since:].splitlines() if regex.search(line)]

    def wait_log(self, pattern: str, timeout: float, *, since: int = 0) -> str:
        """Wait until a log line (after offset ``since``) matches regex ``pattern``; return it."""
        found: list[str] = []

        def seen() -> bool:
            found[:] = self.log_lines(pattern, since=since)
            return bool(found)

        if not _poll_until(seen, timeout):
            raise HeartbeatPeerError(
                f"heartbeat {self.name}: no log line matching {pattern!r} within {timeout} s\n"
                + self._diagnostics()
            )
        return found[0]

    # ---- inside the node's namespaces ----------------------------------------------------

    def pids(self) -> list[int]:
        """Every process of this node now: the master, its children, running scripts."""
        if self._mount_ns is None or not self.running:
            return []
        return sorted(_pids_in_mount_ns(self._mount_ns))

    def run_inside(
        self, argv: Sequence[str], timeout: float = _CL_STATUS_TIMEOUT
    ) -> ClStatusResult:
        """Run ``argv`` in this node's mount and network namespaces (it sees its /etc/ha.d)."""
        full = ["nsenter", "-t", str(self.pid), "-m", "-n", *argv]
        try:
            done = subprocess.run(
                full, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise HeartbeatPeerError(
                f"{' '.join(argv)} on {self.name} took more than {timeout} s"
            ) from None
        return ClStatusResult(
            args=tuple(argv), returncode=done.returncode, stdout=done.stdout, stderr=done.stderr
        )

    def standby(self, what: str = "all") -> None:
        """``hb_standby WHAT`` on this node: give resources to the other node."""
        self._resource_tool(HB_STANDBY_BIN, what)

    def takeover(self, what: str = "all") -> None:
        """``hb_takeover WHAT`` on this node: ask the other node for resources."""
        self._resource_tool(HB_TAKEOVER_BIN, what)

    def _resource_tool(self, tool: Path, what: str) -> None:
        result = self.run_inside([str(tool), what])
        if result.returncode != 0:
            raise HeartbeatPeerError(
                f"{tool.name} {what} on {self.name} failed (exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    # ---- cl_status ---------------------------------------------------------------------

    def cl_status_result(self, *args: str, timeout: float = _CL_STATUS_TIMEOUT) -> ClStatusResult:
        """Run ``cl_status ARGS`` inside this node's namespaces and report everything."""
        argv = ["nsenter", "-t", str(self.pid), "-m", "-n", str(CL_STATUS_BIN), *args]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise HeartbeatPeerError(
                f"cl_status {' '.join(args)} on {self.name} took more than {timeout} s"
            ) from None
        return ClStatusResult(
            args=args, returncode=done.returncode, stdout=done.stdout, stderr=done.stderr
        )

    def cl_status(self, *args: str) -> str:
        """``cl_status ARGS`` output, stripped (e.g. ``cl_status("nodestatus", "hb2")``).

        Raises :class:`HeartbeatPeerError` when cl_status printed nothing on stdout
        (heartbeat not reachable, unknown node...); its stderr is in the message.
        """
        result = self.cl_status_result(*args)
        if not result.stdout.strip():
            raise HeartbeatPeerError(
                f"cl_status {' '.join(args)} on {self.name} failed "
                f"(exit {result.returncode}): {result.stderr.strip()}"
            )
        return result.stdout.strip()

    def wait_nodestatus(self, node: str, status: str, timeout: float) -> float:
        """Poll ``cl_status nodestatus NODE`` until it prints ``status``; return seconds waited.

        cl_status errors (the API socket only opens once communications are up) count as
        "not yet". Raises :class:`HeartbeatPeerError` on timeout or if heartbeat exits.
        """
        began = time.monotonic()
        observed: list[str] = []

        def reached() -> bool:
            if not self.running:
                raise HeartbeatPeerError(
                    f"heartbeat {self.name} exited while waiting for {node} to be {status}\n"
                    + self._diagnostics()
                )
            try:
                now = self.cl_status("nodestatus", node)
            except HeartbeatPeerError as error:
                now = f"<{error}>"
            observed.append(now)
            return now == status

        if not _poll_until(reached, timeout):
            last = observed[-1] if observed else "<never asked>"
            raise HeartbeatPeerError(
                f"heartbeat {self.name}: {node} not {status} within {timeout} s "
                f"(last: {last})\n" + self._diagnostics()
            )
        return time.monotonic() - began

    def _diagnostics(self, lines: int = 30) -> str:
        output = _read(self.layout.launcher_output).strip()
        tail = "\n".join(self.log().splitlines()[-lines:])
        return f"--- heartbeat output ---\n{output}\n--- last {lines} log lines ---\n{tail}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class HeartbeatPeers:
    """Owns the Heartbeat nodes of one test and guarantees they are gone afterwards.

    Use as a context manager (or through a fixture)::

        with HeartbeatPeers(topology, tmp_path) as peers:
            hb1 = peers.add(n1, name="hb1", ha_cf=..., authkeys=...)
            hb1.start()

    Each node gets ``base/<name>`` as its workdir unless one is given.
    """

    def __init__(self, topology: Topology, base: Path) -> None:
        self.topology = topology
        self.base = Path(base)
        self._nodes: list[HeartbeatNode] = []

    def add(
        self,
        node: Node,
        *,
        name: str,
        ha_cf: str,
        authkeys: str,
        haresources: str = "",
        workdir: Path | None = None,
        authkeys_mode: int = 0o600,
    ) -> HeartbeatNode:
        peer = HeartbeatNode(
            self.topology,
            node,
            name=name,
            ha_cf=ha_cf,
            haresources=haresources,
            authkeys=authkeys,
            workdir=workdir if workdir is not None else self.base / name,
            authkeys_mode=authkeys_mode,
        )
        self._nodes.append(peer)
        return peer

    def __iter__(self) -> Iterator[HeartbeatNode]:
        return iter(self._nodes)

    def close(self) -> None:
        """Kill every node; raise the first failure only after trying all of them."""
        errors: list[BaseException] = []
        for peer in reversed(self._nodes):
            try:
                peer.close()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self) -> HeartbeatPeers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
