"""Metrics in the Prometheus text format, served over HTTP by trio, and by ``pulsectl``.

:func:`render` is pure: it turns the daemon's status (the same dictionary
``pulsectl status --json`` prints) and a few process readings into the text
exposition format 0.0.4, which Prometheus, VictoriaMetrics and the OpenMetrics
parsers read. The format is small enough to write here, so the daemon does not need
``prometheus_client`` (whose HTTP server runs in a thread and whose registry holds
state of its own); a test parses the output with ``prometheus_client``'s parser.

:func:`serve_metrics` answers ``GET /metrics`` on ``[metrics] listen`` with one trio
task per connection, a few seconds to send the request, a bounded request size and a
bounded number of connections, so a scraper never delays a heartbeat.
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from pulse.plugin.api import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT = 5.0  # seconds for a client to send its request line and headers
MAX_REQUEST = 8192
MAX_CONNECTIONS = 16
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessReadings:
    cpu_seconds: float
    resident_bytes: int
    virtual_bytes: int
    open_fds: int
    start_time: float  # Unix time


def read_process() -> ProcessReadings:
    """This process's own figures, from /proc (as prometheus_client's process collector)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = f.read().split()
        virtual, resident = int(pages[0]) * _PAGE_SIZE, int(pages[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        virtual = resident = 0
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = 0
    return ProcessReadings(
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        resident_bytes=resident,
        virtual_bytes=virtual,
        open_fds=fds,
        start_time=_start_time(),
    )


def _start_time() -> float:
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        return boot + int(fields[19]) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError, StopIteration):
        return 0.0


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: set[str] = set()

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:
        self.names.add(name)
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text, [({}, value)])


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


NODE_STATES = ("init", "up", "active", "dead", "ping")
GROUP_STATES = ("stopped", "starting", "running", "stopping", "failed")


def render(
    status: Mapping[str, Any],
    process: ProcessReadings,
    plugin_metrics: Iterable[tuple[str, Metric]] = (),
    problems: Iterable[str] = (),
) -> str:
    """The metrics of one node, from its status dictionary (``Daemon.status``), then
    the plugins' families (``pulse_collect_metrics``: ``(plugin, Metric)``) and, as
    comments, the *problems* met collecting them."""
    w = _Writer()
    cluster = status["cluster"]
    node = status["node"]
    w.family(
        "pulse_info",
        "gauge",
        "This node and the pulse version it runs.",
        [({"node": node, "version": status["version"]}, 1)],
    )
    w.family(
        "pulse_node_status",
        "gauge",
        "Each node's status as this node sees it (1 = current).",
        [({"node": node, "status": s}, cluster["local_status"] == s) for s in NODE_STATES]
        + [
            ({"node": n["name"], "status": s}, n["status"] == s)
            for n in cluster["nodes"]
            for s in NODE_STATES
        ],
    )
    w.family(
        "pulse_link_up",
        "gauge",
        "Whether packets arrive from a node over a link.",
        [
            ({"node": n["name"], "link": link}, state == "up")
            for n in cluster["nodes"]
            for link, state in n["links"].items()
        ],
    )
    counters = cluster.get("counters", {})
    w.one(
        "pulse_stalls_total",
        "counter",
        "Times this daemon found it had not run "
        "(stopped, paused, starved) for more than a keepalive.",
        counters.get("stalls", 0),
    )
    w.one(
        "pulse_stall_max_seconds",
        "gauge",
        "The longest such stall.",
        counters.get("stall-ms-max", 0) / 1000,
    )
    wire = status.get("wire", {})
    w.one(
        "pulse_packets_accepted_total",
        "counter",
        "Authenticated packets decoded.",
        wire.get("accepted", 0),
    )
    dropped = {k: v for k, v in wire.items() if k != "accepted"}
    dropped.update({k: v for k, v in counters.items() if k in _ENGINE_DROPS})
    w.family(
        "pulse_packets_dropped_total",
        "counter",
        "Packets dropped, by reason (bad signature, replay, malformed, ...).",
        [({"reason": k}, v) for k, v in sorted(dropped.items())],
    )
    links = status.get("links", {})
    for field, help_text in (
        ("packets_sent", "Packets sent on a link."),
        ("packets_received", "Packets received on a link."),
        ("send_errors", "Sends that failed on a link."),
    ):
        w.family(
            f"pulse_link_{field}_total",
            "counter",
            help_text,
            [({"link": name}, st.get(field, 0)) for name, st in sorted(links.items())],
        )
    _resources(w, status.get("resources"), node)
    _plugins(w, status.get("plugins") or {})
    w.one(
        "process_cpu_seconds_total",
        "counter",
        "CPU time used, user and system.",
        process.cpu_seconds,
    )
    w.one("process_resident_memory_bytes", "gauge", "Resident memory.", process.resident_bytes)
    w.one("process_virtual_memory_bytes", "gauge", "Virtual memory.", process.virtual_bytes)
    w.one("process_open_fds", "gauge", "Open file descriptors.", process.open_fds)
    w.one("process_start_time_seconds", "gauge", "Start time, Unix seconds.", process.start_time)
    for plugin, metric in plugin_metrics:
        why = _refused(plugin, metric, w.names)
        if why is None:
            w.family(metric.name, metric.kind, _one_line(metric.help), metric.samples)
        else:
            w.lines.append(f"# pulse: plugin {_one_line(plugin)}: {why}; left out")
    w.lines += [f"# pulse: {_one_line(p)}" for p in problems]
    return "\n".join(w.lines) + "\n"


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _refused(plugin: str, metric: Metric, taken: set[str]) -> str | None:
    """Why a plugin's metric family cannot be written (pulse.plugin.api.Metric's rules)."""
    name = _one_line(str(metric.name))[:100]
    prefix = "pulse_" + re.sub(r"[^a-zA-Z0-9_]", "_", plugin) + "_"
    if not isinstance(metric.name, str) or not _NAME.fullmatch(metric.name):
        return f"{name!r} is not a metric name"
    if not metric.name.startswith(prefix):
        return f"{name} does not start with {prefix}"
    if metric.kind not in ("gauge", "counter"):
        return f"{name}: kind {metric.kind!r} is neither gauge nor counter"
    if metric.kind == "counter" and not metric.name.endswith("_total"):
        return f"{name}: a counter's name ends in _total"
    if metric.name in taken:
        return f"{name} is already written"
    try:
        for labels, value in metric.samples:
            bad = [k for k in labels if not _LABEL.fullmatch(str(k)) or k.startswith("__")]
            if bad:
                return f"{name}: {_one_line(str(bad[0]))[:40]!r} is not a label name"
            float(value)
    except (TypeError, ValueError) as exc:
        return f"{name}: a sample is not (labels, number): {_one_line(str(exc))[:80]}"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


# Engine counters that are drops of a packet (the others count what the engine did).
_ENGINE_DROPS = frozenset(
    {
        "missing-field",
        "bad-field",
        "unknown-node",
        "not-for-us",
        "unexpected",
        "replay",
        "stale",
        "duplicate",
        "stale-status",
    }
)


def _resources(w: _Writer, res: Mapping[str, Any] | None, node: str) -> None:
    if res is None:
        return
    groups = res.get("groups", [])
    w.family(
        "pulse_group_state",
        "gauge",
        "Each group's state on this node (1 = current).",
        [
            ({"group": g["key"], "state": s}, g["state"] == s and g["holder"] == node)
            for g in groups
            for s in GROUP_STATES
        ],
    )
    w.family(
        "pulse_group_holder",
        "gauge",
        "The node holding each group, as this node sees it.",
        [({"group": g["key"], "node": g["holder"]}, 1) for g in groups if g["holder"]],
    )
    w.family(
        "pulse_group_running",
        "gauge",
        "Whether each group runs somewhere.",
        [({"group": g["key"]}, g["holder"] is not None) for g in groups],
    )
    w.one(
        "pulse_cut_off",
        "gauge",
        "1 while every link of this node fails to send.",
        bool(res.get("cut_off")),
    )
    stats = res.get("statistics", {})
    for kind, help_text in (
        ("acquired", "Groups started here."),
        ("released", "Groups stopped here."),
        ("acquire_failed", "Group starts that failed here."),
        ("release_failed", "Group stops that failed here."),
    ):
        w.family(
            f"pulse_groups_{kind}_total",
            "counter",
            help_text,
            [({"group": g["key"]}, stats.get(kind, {}).get(g["key"], 0)) for g in groups],
        )
    w.family(
        "pulse_failovers_total",
        "counter",
        "Groups this node took over, by cause (a dead node, a takeover, other).",
        [({"cause": c}, n) for c, n in sorted(stats.get("takeovers", {}).items())],
    )
    last = stats.get("last_failover")
    if last is not None:
        w.one(
            "pulse_last_failover_timestamp_seconds",
            "gauge",
            "When this node last took a group over, Unix seconds.",
            last,
        )


def _plugins(w: _Writer, plugins: Mapping[str, Any]) -> None:
    health = {**plugins.get("listeners", {}), **plugins.get("checks_and_fencing", {})}
    w.family(
        "pulse_plugin_failures_total",
        "counter",
        "Calls into a plugin object that failed.",
        [({"plugin": name}, st.get("failures", 0)) for name, st in sorted(health.items())],
    )


# --------------------------------------------------------------------------- HTTP


async def serve_metrics(
    host: str,
    port: int,
    text: Callable[[], Awaitable[str]],
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer ``GET /metrics`` with ``await text()`` until cancelled."""
    limiter = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def handler(stream: trio.SocketStream) -> None:
        if limiter.available_tokens == 0:
            await stream.aclose()  # too many scrapers at once: drop the newcomer
            return
        async with limiter, stream:
            await _answer(stream, text)

    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners)
    await trio.serve_listeners(handler, listeners)


async def _answer(stream: trio.SocketStream, text: Callable[[], Awaitable[str]]) -> None:
    head = b""
    with trio.move_on_after(REQUEST_TIMEOUT):
        while b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) <= MAX_REQUEST:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            head += chunk
    request = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0].split()
    if len(request) < 2 or len(head) > MAX_REQUEST:
        await _respond(stream, 400, "text/plain", "bad request\n")
        return
    method, target = request[0], request[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        await _respond(stream, 405, "text/plain", "GET only\n")
    elif target != b"/metrics":
        await _respond(stream, 404, "text/plain", "pulse serves /metrics\n")
    else:
        body = await text()
        await _respond(stream, 200, CONTENT_TYPE, body if method == b"GET" else "")


async def _respond(stream: trio.SocketStream, code: int, ctype: str, body: str) -> None:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[code]
    data = body.encode()
    head = (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        with trio.move_on_after(REQUEST_TIMEOUT):
            await stream.send_all(head + data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
