"""Network-namespace test topologies: nodes on virtual LANs, serial lines, packet loss.

Every end-to-end test in pulse builds its network with :class:`Topology`::

    with Topology() as topo:
        lan = topo.add_lan("lan0", "198.51.100.0/24")
        a, b = topo.add_node("a"), topo.add_node("b")
        topo.connect(a, lan, "eth0", "198.51.100.1")
        topo.connect(b, lan, "eth0", "198.51.100.2")
        topo.run(a, ["ping", "-c1", "-W1", "198.51.100.2"])

(or through the ``topology`` fixture of ``tests/e2e/conftest.py``).

Safety rules, enforced here rather than trusted to each test:

* Only subnets inside 198.51.100.0/24 and 203.0.113.0/24 (RFC 5737 documentation
  ranges) are accepted, and only if no route of the root namespace overlaps them
  (default routes aside): a test can never shadow or answer for a real network.
* Nothing is ever configured in the root namespace. Every ``ip`` command names the
  namespace it acts in (``ip -n NS``); veth pairs are created inside a node's
  namespace with their peer sent straight into the LAN's switch namespace.
* Namespace names carry the creating process id (``pt<pid>-<n>-<name>``). When a
  topology starts it deletes the namespaces of earlier runs whose process is gone.
* Cleanup runs from ``close()`` (context manager, fixture teardown), at interpreter
  exit, and on SIGTERM/SIGINT; it is idempotent and safe to re-enter.
* Every subprocess call has a timeout; every wait loop is bounded.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

ALLOWED_NETWORKS = (
    ipaddress.IPv4Network("198.51.100.0/24"),
    ipaddress.IPv4Network("203.0.113.0/24"),
)
COMMAND_TIMEOUT = 20.0
TERMINATE_GRACE = 3.0
BRIDGE = "br0"
_CUT_TABLE = "pulse_cut"  # the nftables table of Topology.cut_off and reconnect
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,15}$")
_PREFIX_RE = re.compile(r"^[a-z]{1,6}$")


# --------------------------------------------------------------------------- safety


def allowed_subnet(subnet: str) -> ipaddress.IPv4Network:
    """Parse ``subnet``; ValueError unless it lies inside a documentation range we own."""
    try:
        network = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 subnet: {subnet!r} ({exc})") from exc
    if not any(network.subnet_of(allowed) for allowed in ALLOWED_NETWORKS):
        ranges = ", ".join(str(n) for n in ALLOWED_NETWORKS)
        raise ValueError(f"subnet {network} refused: test networks must lie inside {ranges}")
    return network


def root_routes() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination the root namespace routes, in any table (not defaults)."""
    out = _check_output(["ip", "-4", "-j", "route", "show", "table", "all"])
    return parse_routes(out)


def parse_routes(ip_json: str) -> list[ipaddress.IPv4Network]:
    """Destinations of ``ip -j route`` output; ``default`` routes are not counted
    (they cover everything, and a test network overlapping them is exactly normal)."""
    routes: list[ipaddress.IPv4Network] = []
    entries: list[dict[str, Any]] = json.loads(ip_json) if ip_json.strip() else []
    for entry in entries:
        dst = str(entry.get("dst", ""))
        if not dst or dst == "default":
            continue
        try:
            routes.append(ipaddress.IPv4Network(dst, strict=False))
        except ValueError:
            continue  # IPv6 or a form we do not read: it cannot overlap an IPv4 subnet
    return routes


def overlapping_route(
    subnet: ipaddress.IPv4Network, routes: Sequence[ipaddress.IPv4Network]
) -> ipaddress.IPv4Network | None:
    for route in routes:
        if subnet.overlaps(route):
            return route
    return None


def validate_subnet(
    subnet: str, routes: Sequence[ipaddress.IPv4Network] | None = None
) -> ipaddress.IPv4Network:
    """Both safety rules: a documentation range, and not routed by the root namespace."""
    network = allowed_subnet(subnet)
    clash = overlapping_route(network, root_routes() if routes is None else routes)
    if clash is not None:
        raise ValueError(f"subnet {network} refused: the root namespace routes {clash}")
    return network


# --------------------------------------------------------------------------- subprocess


class CommandError(subprocess.CalledProcessError):
    """A failed command, with its stderr in the message (pytest shows it)."""

    def __str__(self) -> str:
        stderr = self.stderr.strip() if isinstance(self.stderr, str) else self.stderr
        return f"{super().__str__()}\n{stderr}" if stderr else super().__str__()


def _check_output(argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise CommandError(done.returncode, list(argv), done.stdout, done.stderr)
    return done.stdout


def _quiet(argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT) -> None:
    """Run a cleanup command; failures (already gone, timeout) are ignored."""
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    out = _check_output(["ip", "-j", "netns", "list"])
    entries: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return [str(e["name"]) for e in entries if "name" in e]


def _kill_namespace_processes(netns: str) -> None:
    """SIGKILL whatever still runs inside a namespace we created (and are deleting)."""
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        out = _check_output(["ip", "netns", "pids", netns], timeout=5)
        for word in out.split():
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.kill(int(word), signal.SIGKILL)


def _delete_namespace(netns: str) -> None:
    _kill_namespace_processes(netns)
    _quiet(["ip", "netns", "delete", netns], timeout=10)


def delete_stale_namespaces(prefix: str) -> list[str]:
    """Delete ``<prefix><pid>-…`` namespaces whose creating process no longer exists."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)-")
    deleted: list[str] = []
    for name in list_namespaces():
        match = pattern.match(name)
        if match and not _pid_alive(int(match.group(1))):
            _delete_namespace(name)
            deleted.append(name)
    return deleted


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    name: str
    netns: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Lan:
    name: str
    subnet: ipaddress.IPv4Network
    netns: str  # the "switch" namespace holding the bridge
    bridge: str = BRIDGE


@dataclass(frozen=True, slots=True, kw_only=True)
class Iface:
    node: Node
    lan: Lan
    ifname: str  # the name inside the node (eth0)
    address: ipaddress.IPv4Interface
    bridge_port: str  # the veth end on the LAN's bridge, in lan.netns

    @property
    def ip(self) -> str:
        return str(self.address.ip)


# --------------------------------------------------------------------------- cleanup hooks

_live: set[Topology] = set()
_live_lock = threading.RLock()  # re-entrant: the signal handler runs on the main thread
_hooks_installed = False
_sequence = itertools.count(1)


def _close_all() -> None:
    with _live_lock:
        topologies = list(_live)
    for topo in topologies:
        topo.close()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _close_all()
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


_previous_handlers: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_close_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit remains
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if previous is _on_signal:
            continue
        _previous_handlers[signum] = previous
        signal.signal(signum, _on_signal)


# --------------------------------------------------------------------------- topology


class Topology:
    """Namespaces, bridges, veths, ptys and processes of one test; all removed by close()."""

    def __init__(self, name_prefix: str = "pt") -> None:
        if not _PREFIX_RE.match(name_prefix):
            raise ValueError(f"name prefix {name_prefix!r}: 1-6 lower-case letters")
        self.prefix = name_prefix
        self._tag = f"{name_prefix}{os.getpid()}-{next(_sequence)}"
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self._nodes: dict[str, Node] = {}
        self._lans: dict[str, Lan] = {}
        self._ports = itertools.count(1)
        self._tmpdir: str | None = None
        self._closers: list[Callable[[], None]] = []
        self._closed = False
        delete_stale_namespaces(name_prefix)
        _install_hooks()
        with _live_lock:
            _live.add(self)

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __hash__(self) -> int:
        return id(self)

    # ----------------------------------------------------------------- building

    def _new_namespace(self, suffix: str) -> str:
        if self._closed:
            raise RuntimeError("topology is closed")
        netns = f"{self._tag}-{suffix}"
        self._namespaces.append(netns)  # recorded first: cleaned up even if setup fails
        _check_output(["ip", "netns", "add", netns])
        self._ip(netns, "link", "set", "lo", "up")
        return netns

    def _ip(self, netns: str, *args: str) -> str:
        """``ip -n NETNS …``: the only way this module configures anything."""
        if netns not in self._namespaces:
            raise RuntimeError(f"refusing to configure namespace {netns!r} we did not create")
        return _check_output(["ip", "-n", netns, *args])

    def add_node(self, name: str) -> Node:
        """A namespace ``<prefix><pid>-<n>-<name>`` with only ``lo`` (up)."""
        if not _NAME_RE.match(name) or name in self._nodes:
            raise ValueError(f"bad or duplicate node name {name!r}")
        node = Node(name=name, netns=self._new_namespace(name))
        self._nodes[name] = node
        return node

    def add_lan(self, name: str, subnet: str) -> Lan:
        """A bridge in its own "switch" namespace, for addresses inside ``subnet``."""
        if not _NAME_RE.match(name) or name in self._lans:
            raise ValueError(f"bad or duplicate LAN name {name!r}")
        network = validate_subnet(subnet)
        netns = self._new_namespace(f"sw-{name}")
        self._ip(netns, "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0")
        self._ip(netns, "link", "set", BRIDGE, "up")
        lan = Lan(name=name, subnet=network, netns=netns)
        self._lans[name] = lan
        return lan

    def connect(self, node: Node, lan: Lan, ifname: str, address: str) -> Iface:
        """Plug ``node`` into ``lan`` as ``ifname`` with ``address`` (prefix from the LAN)."""
        given = ipaddress.IPv4Interface(address)
        ip = given.ip
        if "/" in address and given.network.prefixlen != lan.subnet.prefixlen:
            raise ValueError(f"{address}: {lan.name} is {lan.subnet}, prefix must match")
        if ip not in lan.subnet or ip in (lan.subnet.network_address, lan.subnet.broadcast_address):
            raise ValueError(f"{ip} is not a host address of {lan.name} ({lan.subnet})")
        if len(ifname) > 15 or not ifname.isprintable() or "/" in ifname:
            raise ValueError(f"bad interface name {ifname!r}")
        iface_address = ipaddress.IPv4Interface(f"{ip}/{lan.subnet.prefixlen}")
        port = f"p{next(self._ports)}{node.name}"[:15]
        # Created inside the node's namespace, the peer sent straight to the switch.
        self._ip(
            node.netns, "link", "add", ifname, "type", "veth", "peer", "name", port,
            "netns", lan.netns,
        )  # fmt: skip
        self._ip(lan.netns, "link", "set", port, "master", lan.bridge, "up")
        self._ip(node.netns, "addr", "add", str(iface_address), "brd", "+", "dev", ifname)
        self._ip(node.netns, "link", "set", ifname, "multicast", "on", "up")
        iface = Iface(node=node, lan=lan, ifname=ifname, address=iface_address, bridge_port=port)
        self._wait_operational(iface)
        return iface

    def _wait_operational(self, iface: Iface, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self._ip(iface.node.netns, "-j", "link", "show", "dev", iface.ifname)
            if json.loads(out)[0].get("operstate") in ("UP", "UNKNOWN"):
                return
            time.sleep(0.02)
        raise RuntimeError(f"{iface.node.name}:{iface.ifname} did not come up in {timeout}s")

    def link_down(self, iface: Iface, *, side: str = "node") -> None:
        """Cut a cable: ``side="node"`` downs the node's interface (its sends then fail),
        ``side="lan"`` downs the bridge port (the node only sees carrier loss)."""
        self._set_link(iface, side, "down")

    def link_up(self, iface: Iface, *, side: str = "node") -> None:
        self._set_link(iface, side, "up")
        if side == "node":
            self._wait_operational(iface)

    def _set_link(self, iface: Iface, side: str, state: str) -> None:
        if side == "node":
            self._ip(iface.node.netns, "link", "set", iface.ifname, state)
        elif side == "lan":
            self._ip(iface.lan.netns, "link", "set", iface.bridge_port, state)
        else:
            raise ValueError(f"side must be 'node' or 'lan', not {side!r}")

    def nft(self, node: Node, ruleset: str) -> None:
        """Load an nftables ruleset inside the node's namespace, e.g. 30 % loss::

        table inet loss {
            chain in {
                type filter hook input priority 0;
                udp dport 694 numgen random mod 100 < 30 drop
            }
        }
        """
        self.run(node, ["nft", "-f", "-"], input=ruleset)

    def cut_off(self, node: Node, *addresses: str) -> None:
        """Drop every IPv4 packet between *node* and *addresses* (a router it can no
        longer reach), inside the node's namespace; the rest of its LAN stays up."""
        hosts = ", ".join(addresses)
        self.nft(
            node,
            f"table inet {_CUT_TABLE} {{\n"
            f"  chain out {{ type filter hook output priority 0; ip daddr {{ {hosts} }} drop; }}\n"
            f"  chain in {{ type filter hook input priority 0; ip saddr {{ {hosts} }} drop; }}\n"
            "}\n",
        )

    def reconnect(self, node: Node) -> None:
        """Undo :meth:`cut_off`."""
        self.run(node, ["nft", "delete", "table", "inet", _CUT_TABLE])

    def serial_pair(self) -> tuple[str, str]:
        """Two ptys joined by socat, like a null-modem cable; paths are stable symlinks."""
        if self._closed:
            raise RuntimeError("topology is closed")
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix=f"{self._tag}-")
        n = next(self._ports)
        ends = (os.path.join(self._tmpdir, f"tty{n}a"), os.path.join(self._tmpdir, f"tty{n}b"))
        argv = ["socat", *(f"pty,raw,echo=0,link={end}" for end in ends)]
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self._processes.append(proc)
        deadline = time.monotonic() + 5.0
        while not all(os.path.exists(end) for end in ends):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"socat did not create a pty pair (exit {proc.returncode})")
            time.sleep(0.01)
        return ends

    # ----------------------------------------------------------------- processes

    def exec_argv(self, node: Node, argv: Sequence[str]) -> list[str]:
        """The argv that runs ``argv`` inside ``node`` (for trio.run_process and friends)."""
        if node.netns not in self._namespaces:
            raise RuntimeError(f"{node.name} is not a node of this topology")
        return ["ip", "netns", "exec", node.netns, *argv]

    def run(
        self,
        node: Node,
        argv: Sequence[str],
        *,
        timeout: float = COMMAND_TIMEOUT,
        check: bool = True,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside ``node`` to completion (text mode, output captured)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        done: subprocess.CompletedProcess[str] = subprocess.run(
            self.exec_argv(node, argv), timeout=timeout, check=False, **kwargs
        )
        if check and done.returncode != 0:
            raise CommandError(done.returncode, list(argv), done.stdout, done.stderr)
        return done

    def popen(self, node: Node, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a command inside ``node``; it is terminated (SIGTERM, then SIGKILL after
        a grace period) at close(), with every process of its session."""
        if self._closed:
            raise RuntimeError("topology is closed")
        kwargs.setdefault("start_new_session", True)
        proc: subprocess.Popen[Any] = subprocess.Popen(self.exec_argv(node, argv), **kwargs)
        self._processes.append(proc)
        return proc

    def terminate(self, proc: subprocess.Popen[Any], grace: float = TERMINATE_GRACE) -> None:
        """SIGTERM a tracked process group, SIGKILL it if it is still there after ``grace``."""
        if proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    @staticmethod
    def _signal_group(proc: subprocess.Popen[Any], signum: int) -> None:
        try:
            os.killpg(proc.pid, signum)  # its own session: the group id is its pid
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    # ----------------------------------------------------------------- cleanup

    def namespaces(self) -> list[str]:
        return list(self._namespaces)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call *callback* first thing in :meth:`close` (undo faults before processes
        are stopped: a frozen daemon ignores SIGTERM). Its exceptions are ignored."""
        self._closers.append(callback)

    def close(self) -> None:
        """Stop every process and delete every namespace and pty this topology made.

        Idempotent, and safe when re-entered from a signal handler: each resource is
        forgotten only after it has been dealt with, so an interrupted close leaves
        nothing behind for the next call.
        """
        self._closed = True
        while self._closers:
            closer = self._closers.pop()
            with contextlib.suppress(Exception):
                closer()
        for proc in list(self._processes):
            self.terminate(proc)
            with contextlib.suppress(ValueError):
                self._processes.remove(proc)
        for netns in list(reversed(self._namespaces)):
            _delete_namespace(netns)
            with contextlib.suppress(ValueError):
                self._namespaces.remove(netns)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        with _live_lock:
            _live.discard(self)


@contextlib.contextmanager
def topology(name_prefix: str = "pt") -> Iterator[Topology]:
    """``with topology() as topo:`` — the same as ``with Topology() as topo:``."""
    topo = Topology(name_prefix)
    try:
        yield topo
    finally:
        topo.close()


def netns_available() -> str | None:
    """None if namespaces can be built here, else the reason (for pytest.skip)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    try:
        list_namespaces()
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        return f"`ip netns` is unavailable: {exc}"
    return None
