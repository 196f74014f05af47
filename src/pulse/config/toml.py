"""pulse's own TOML configuration format (documented in docs/configuration.md).

The TOML document is translated into the same intermediate :class:`HaCf` that
ha.cf produces, running every value through the same validators, and then
:func:`pulse.config.assemble.build_config` applies the shared derived defaults and
global checks. Diagnostics name the key path and its line:
``pulse.toml:12: timing.deadtime: must be more than twice keepalive (4s); ...``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pulse.config.assemble import build_config
from pulse.config.authkeys import authkeys_permission_error, read_authkeys
from pulse.config.checks import Locator, diagnostic
from pulse.config.durations import parse_bool, parse_duration, parse_hb_time
from pulse.config.hacf import (
    OPTION_DIRECTIVES,
    OPTION_HANDLERS,
    HaCf,
    apply_apiauth,
    check_mcast_fields,
    check_peer,
    read_stonith_params,
)
from pulse.config.haresources import resource_spec
from pulse.config.model import (
    CLUSTER_EVENT_KINDS,
    DEFAULT_UDPPORT,
    NOTIFY_TIMEOUT_MS,
    VALID_BAUDS,
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    McastMedium,
    MetricsOptions,
    MonitorOptions,
    NotifyScript,
    OnFail,
    PingGroupMedium,
    PingMedium,
    ResourceGroup,
    ResourceOptions,
    ResourceSpec,
    RespawnDirective,
    SerialMedium,
    Source,
    StonithDirective,
    UcastMedium,
)
from pulse.config.words import did_you_mean
from pulse.errors import Diagnostic

# Structured TOML keys that stand for an ha.cf directive: (table, key) -> directive.
CLUSTER_KEYS = {
    "udpport": "udpport",
    "baud": "baud",
    "hopfudge": "hopfudge",
    "auto_failback": "auto_failback",
    "msgfmt": "msgfmt",
    "hbgenmethod": "hbgenmethod",
    "max_rexmit_delay": "max_rexmit_delay",
    "watchdog": "watchdog",
}
TIMING_KEYS = ("keepalive", "deadtime", "warntime", "initdead", "deadping")
LOGGING_KEYS = {
    "logfile": "logfile",
    "debugfile": "debugfile",
    "facility": "logfacility",
    "debug": "debug",
    "syslogmsgfmt": "syslogmsgfmt",
    "use_logd": "use_logd",
}
STRUCTURED_DIRECTIVES = frozenset(
    {"node", "cluster", *CLUSTER_KEYS.values(), *TIMING_KEYS, *LOGGING_KEYS.values()}
)
# ha.cf directives with no structured key: kept verbatim under [heartbeat].
HEARTBEAT_KEYS = (*(d for d in OPTION_DIRECTIVES if d not in STRUCTURED_DIRECTIVES), "apiauth")
TOP_KEYS = ("cluster", "timing", "links", "auth", "groups", "logging", "stonith", "respawn",
            "heartbeat", "plugins", "resources", "metrics", "notify", "control")  # fmt: skip
RESOURCE_KEYS = (
    "start_timeout", "stop_timeout", "status_timeout", "stop_retries", "arp_count", "arp_interval"
)  # fmt: skip
CLUSTER_ALL = ("name", "nodes", "resource_dir", "ipfail", *CLUSTER_KEYS)
LINK_KEYS: dict[str, tuple[str, ...]] = {
    "bcast": ("interface", "port"),
    "ucast": ("interface", "peer", "port"),
    "mcast": ("interface", "group", "port", "ttl", "loop"),
    "serial": ("device", "baud"),
    "ping": ("host", "ipv6"),
    "ping_group": ("name", "hosts"),
}
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


# --------------------------------------------------------------------------- key lines


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Line of each table header and ``key =`` line, by key path.

    Array-of-tables elements are numbered (``("links", 1, "type")``). Good enough for
    diagnostics: keys inside inline tables or multi-line values map to their parent.
    """
    lines: dict[tuple[str | int, ...], int] = {}
    counts: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        m = re.match(r"^\[\[\s*([^\]]+?)\s*\]\]", s)
        if m:
            base = _resolve_arrays(_dotted(m.group(1), table_prefix=()), counts)
            idx = counts.get(base, -1) + 1
            counts[base] = idx
            table = (*base, idx)
            lines.setdefault(base, n)
            lines[table] = n
            continue
        m = re.match(r"^\[\s*([^\]]+?)\s*\]", s)
        if m:
            table = _resolve_arrays(_dotted(m.group(1), table_prefix=()), counts)
            lines.setdefault(table, n)
            continue
        m = re.match(r"^([A-Za-z0-9_\-\"'. ]+?)\s*=", s)
        if m:
            path = (*table, *_dotted(m.group(1), table_prefix=()))
            lines.setdefault(path, n)
    return lines


def _dotted(text: str, *, table_prefix: tuple[str, ...]) -> tuple[str, ...]:
    parts = [p.strip().strip("\"'") for p in text.split(".")]
    return (*table_prefix, *parts)


def _resolve_arrays(
    path: tuple[str | int, ...], counts: Mapping[tuple[str | int, ...], int]
) -> tuple[str | int, ...]:
    # [links.sub] after [[links]] refers to the latest links element.
    out: tuple[str | int, ...] = ()
    for part in path:
        out = (*out, part)
        if out in counts and part != path[-1]:
            out = (*out, counts[out])
    return out


def line_at(lines: Mapping[tuple[str | int, ...], int], path: tuple[str | int, ...]) -> int:
    """The line of *path* in *lines*, else of its nearest parent that has one, else 0."""
    while path:
        n = lines.get(path)
        if n is not None:
            return n
        path = path[:-1]
    return 0


def format_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out


# --------------------------------------------------------------------------- reader


@dataclass(slots=True)
class _Reader:
    """Walks the parsed document, collecting diagnostics with key path and line."""

    file: str
    lines: dict[tuple[str | int, ...], int]
    diags: list[Diagnostic]

    def line(self, path: tuple[str | int, ...]) -> int:
        return line_at(self.lines, path)

    def src(self, path: tuple[str | int, ...]) -> Source:
        return Source(self.file, self.line(path))

    def error(self, path: tuple[str | int, ...], msg: str) -> None:
        self.diags.append(diagnostic(self.src(path), f"{format_path(path)}: {msg}"))

    def warn(self, path: tuple[str | int, ...], msg: str) -> None:
        self.diags.append(diagnostic(self.src(path), f"{format_path(path)}: {msg}", warning=True))

    def table(
        self, value: object, path: tuple[str | int, ...], allowed: tuple[str, ...]
    ) -> dict[str, object]:
        if not isinstance(value, dict):
            self.error(path, f"expected a table, got {_type_name(value)}")
            return {}
        for k in value:
            if k not in allowed:
                self.error((*path, k), f"unknown key{did_you_mean(k, list(allowed))}")
        return {k: v for k, v in value.items() if k in allowed}

    def array_of_tables(
        self, value: object, path: tuple[str | int, ...]
    ) -> list[dict[str, object]]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(path, f"expected an array of tables ([[{format_path(path)}]])")
            return []
        return list(value)

    def string(self, value: object, path: tuple[str | int, ...]) -> str | None:
        if not isinstance(value, str):
            self.error(path, f"expected a string, got {_type_name(value)}")
            return None
        return value

    def integer(self, value: object, path: tuple[str | int, ...]) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"expected an integer, got {_type_name(value)}")
            return None
        return value

    def boolean(self, value: object, path: tuple[str | int, ...]) -> bool | None:
        if not isinstance(value, bool):
            self.error(path, f"expected true or false, got {_type_name(value)}")
            return None
        return value

    def strings(self, value: object, path: tuple[str | int, ...]) -> list[str] | None:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(path, f"expected an array of strings, got {_type_name(value)}")
            return None
        return list(value)


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _as_text(value: object) -> str | None:
    """A scalar TOML value as ha.cf would have it written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


# --------------------------------------------------------------------------- loading


def load_toml(path: Path, node: str | None) -> tuple[Config | None, str, list[Diagnostic]]:
    """Read a pulse TOML file; returns (config or None, local node, diagnostics)."""
    file = str(path)
    local = (node or os.uname().nodename).strip().lower()
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except FileNotFoundError:
        return None, local, [Diagnostic(file, 0, "no such file")]
    except (OSError, ValueError) as e:
        return (
            None,
            local,
            [Diagnostic(file, 0, f"cannot read: {e.strerror if isinstance(e, OSError) else e}")],
        )
    text = data.decode("utf-8", errors="replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return None, local, [_syntax_diagnostic(file, text, str(e))]
    r = _Reader(file=file, lines=key_lines(text), diags=[])
    config = _build(doc, r, path, st.st_mode, local)
    return config, local, r.diags


def _syntax_diagnostic(file: str, text: str, message: str) -> Diagnostic:
    m = _TOML_POS.search(message)
    if m is not None:
        clean = _TOML_POS.sub(f"(column {m.group(2)})", message)
        return Diagnostic(file, int(m.group(1)), f"TOML syntax error: {clean}")
    if "end of document" in message:
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        clean = message.replace(" (at end of document)", "")
        return Diagnostic(file, line, f"TOML syntax error: {clean} (at end of file)")
    return Diagnostic(file, 0, f"TOML syntax error: {message}")


def _feed(cf: HaCf, r: _Reader, directive: str, value: object, path: tuple[str | int, ...]) -> None:
    """Apply one TOML value through the ha.cf directive's own validator."""
    text = _as_text(value)
    if text is None or text == "":
        r.error(path, f"expected a value for {directive}, got {_type_name(value)}")
        return
    src = r.src(path)
    before = len(cf.diagnostics)
    if directive == "apiauth":
        apply_apiauth(cf, text.split(), src)
    elif directive == "nice_failback":
        # Recorded only: in TOML, cluster.auto_failback alone decides the mode.
        if parse_bool(text) is None:
            cf.error(src.line, f"nice_failback: bad boolean [{text}] (use on/off)")
        else:
            cf.parameters[directive] = text
    else:
        handler = OPTION_HANDLERS.get(directive)
        ok = handler is None or handler(cf, text, src)
        if ok:
            cf.parameters[directive] = text
            cf.sources[directive] = src
    for d in cf.diagnostics[before:]:
        msg = d.message
        if msg.startswith(directive):
            msg = msg[len(directive) :].lstrip(" :")
        r.diags.append(Diagnostic(d.file, d.line, f"{format_path(path)}: {msg}", d.severity))
    del cf.diagnostics[before:]


def _build(doc: dict[str, object], r: _Reader, path: Path, mode: int, local: str) -> Config | None:
    top = r.table(doc, (), TOP_KEYS)
    cf = HaCf(file=r.file)
    confdir = path.parent

    cluster = r.table(top.get("cluster", {}), ("cluster",), CLUSTER_ALL)
    if "cluster" not in top:
        r.error(("cluster",), "missing [cluster] table (name, nodes, auto_failback)")
    if "name" in cluster:
        name = r.string(cluster["name"], ("cluster", "name"))
        if name:
            _feed(cf, r, "cluster", name, ("cluster", "name"))
    nodes = r.strings(cluster.get("nodes", []), ("cluster", "nodes"))
    if nodes is None:
        cf.failed.add("nodes")
    cf.nodes = [n.lower() for n in nodes or []]
    if "nodes" in cluster:
        cf.sources["nodes"] = r.src(("cluster", "nodes"))
    else:
        cf.sources["nodes"] = r.src(("cluster",))
    # udpport/baud first: links default to them (no ordering quirk in TOML).
    for key in sorted(CLUSTER_KEYS, key=lambda k: k not in ("udpport", "baud")):
        if key in cluster:
            value = cluster[key]
            if key in ("udpport", "baud", "hopfudge", "max_rexmit_delay"):
                if r.integer(value, ("cluster", key)) is None:
                    continue
            elif key == "auto_failback" and isinstance(value, bool):
                pass
            elif r.string(value, ("cluster", key)) is None:
                continue
            _feed(cf, r, CLUSTER_KEYS[key], value, ("cluster", key))
    if "ipfail" in cluster:
        cf.ipfail = r.boolean(cluster["ipfail"], ("cluster", "ipfail")) is True
    resource_dir = str(confdir / "resource.d")
    if "resource_dir" in cluster:
        rd = r.string(cluster["resource_dir"], ("cluster", "resource_dir"))
        if rd:
            resource_dir = str(confdir / rd)
    resource_dir = os.path.abspath(resource_dir)

    timing = r.table(top.get("timing", {}), ("timing",), TIMING_KEYS)
    for key in TIMING_KEYS:
        if key in timing:
            _timing(cf, r, key, timing[key])

    for i, link in enumerate(r.array_of_tables(top.get("links", []), ("links",))):
        before = len(r.diags)
        _link(cf, r, i, link)
        if len(r.diags) > before:
            cf.failed.add("media")
    if top.get("links"):
        cf.sources["media"] = r.src(("links", 0))
    else:
        cf.sources["media"] = r.src(("links",))

    logging = r.table(top.get("logging", {}), ("logging",), tuple(LOGGING_KEYS))
    for key, directive in LOGGING_KEYS.items():
        if key in logging:
            value = logging[key]
            if key == "debug":
                if r.integer(value, ("logging", key)) is None:
                    continue
            elif key in ("syslogmsgfmt", "use_logd"):
                if not isinstance(value, bool | str):
                    r.boolean(value, ("logging", key))
                    continue
            elif r.string(value, ("logging", key)) is None:
                continue
            _feed(cf, r, directive, value, ("logging", key))

    heartbeat = r.table(top.get("heartbeat", {}), ("heartbeat",), HEARTBEAT_KEYS)
    for key, value in heartbeat.items():
        if isinstance(value, list | dict):
            r.error(("heartbeat", key), f"expected a string, got {_type_name(value)}")
            continue
        _feed(cf, r, key, value, ("heartbeat", key))

    for i, st in enumerate(r.array_of_tables(top.get("stonith", []), ("stonith",))):
        _stonith(cf, r, i, st, confdir)
    for i, rs in enumerate(r.array_of_tables(top.get("respawn", []), ("respawn",))):
        _respawn(cf, r, i, rs)

    groups = _groups(r, top.get("groups", []))
    auth = _auth(r, top.get("auth"), path, mode)

    timeouts = _resource_options(r, top.get("resources", {}))
    metrics = _metrics(r, top.get("metrics"))
    control = r.table(top.get("control", {}), ("control",), ("group",))
    control_group = r.string(control["group"], ("control", "group")) if "group" in control else None
    notify = tuple(
        n
        for i, t in enumerate(r.array_of_tables(top.get("notify", []), ("notify",)))
        if (n := _notify(r, i, t)) is not None
    )
    plugins: dict[str, Mapping[str, object]] = {}
    disabled: tuple[str, ...] = ()
    raw_plugins = top.get("plugins", {})
    if not isinstance(raw_plugins, dict):
        r.error(("plugins",), "expected a table of [plugins.NAME] tables")
    else:
        for pname, ptable in raw_plugins.items():
            if pname == "disable":
                if not isinstance(ptable, list) or not all(isinstance(n, str) for n in ptable):
                    r.error(("plugins", "disable"), "expected a list of plugin names")
                else:
                    disabled = tuple(ptable)
                continue
            if not isinstance(ptable, dict):
                r.error(("plugins", pname), f"expected a table, got {_type_name(ptable)}")
                continue
            plugins[pname] = ptable

    loc = Locator(file=r.file, sources=dict(cf.sources), toml=True, failed=frozenset(cf.failed))
    config, diags = build_config(
        cf,
        auth=auth,
        groups=groups,
        loc=loc,
        local=local,
        origin=r.file,
        resource_dir=resource_dir,
        plugins=plugins,
    )
    r.diags.extend(cf.diagnostics)
    r.diags.extend(diags)
    if config is not None:
        config = dataclasses.replace(
            config,
            disabled_plugins=disabled,
            resource_options=timeouts,
            metrics=metrics,
            notify=notify,
            control_group=control_group,
            key_lines=r.lines,
        )
    return config


def _notify(r: _Reader, i: int, table: dict[str, object]) -> NotifyScript | None:
    """``[[notify]] command = [argv...]``, ``events = [...]``, ``timeout = "10s"``."""
    base: tuple[str | int, ...] = ("notify", i)
    t = r.table(table, base, ("command", "events", "timeout"))
    command = r.strings(t["command"], (*base, "command")) if "command" in t else None
    if not command:
        if "command" not in t or command == []:
            r.error(base, 'a notify script needs command = ["/path/to/program", "arg", ...]')
        return None
    if not command[0].startswith("/"):
        r.error((*base, "command"), f"program [{command[0]}] must be an absolute path")
        return None
    events: tuple[str, ...] = CLUSTER_EVENT_KINDS
    if "events" in t:
        listed = r.strings(t["events"], (*base, "events"))
        if listed is None:
            return None
        unknown = [e for e in listed if e not in CLUSTER_EVENT_KINDS]
        for e in unknown:
            r.error(
                (*base, "events"),
                f"unknown event [{e}]{did_you_mean(e, list(CLUSTER_EVENT_KINDS))}; "
                f"known: {', '.join(CLUSTER_EVENT_KINDS)}",
            )
        if unknown:
            return None
        events = tuple(listed)
    timeout = NOTIFY_TIMEOUT_MS
    if "timeout" in t:
        raw = t["timeout"]
        ms = parse_duration(raw) if isinstance(raw, str) else None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            ms = int(raw * 1000 + 0.5)
        if ms is None or ms <= 0:
            r.error((*base, "timeout"), f'expected a positive duration ("10s"), got {raw!r}')
            return None
        timeout = ms
    return NotifyScript(command=tuple(command), events=events, timeout=timeout, source=r.src(base))


def _metrics(r: _Reader, value: object) -> MetricsOptions | None:
    """``[metrics] listen = "127.0.0.1:9694"`` (or ``"[::1]:9694"``)."""
    if value is None:
        return None
    table = r.table(value, ("metrics",), ("listen",))
    raw = table.get("listen")
    if raw is None:
        r.error(("metrics",), 'expected listen = "HOST:PORT", e.g. listen = "127.0.0.1:9694"')
        return None
    if isinstance(raw, str):
        host, sep, port = raw.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        try:
            ipaddress.ip_address(host)
            number = int(port)
        except ValueError:
            number = 0
        if sep and 0 < number < 65536:
            return MetricsOptions(host=host, port=number)
    r.error(
        ("metrics", "listen"),
        f'expected "ADDRESS:PORT" with an IP address, e.g. "127.0.0.1:9694", got {raw!r}',
    )
    return None


def _resource_options(r: _Reader, value: object) -> ResourceOptions:
    """``[resources]``: per-operation timeouts for every resource, and stop retries."""
    table = r.table(value, ("resources",), RESOURCE_KEYS)
    found: dict[str, int] = {}
    for key in ("start_timeout", "stop_timeout", "status_timeout", "arp_interval"):
        if key not in table:
            continue
        raw = table[key]
        ms = parse_duration(raw) if isinstance(raw, str) else None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            ms = int(raw * 1000 + 0.5)
        if ms is None or ms <= 0:
            r.error(
                ("resources", key), f'expected a positive duration ("30s", "500ms"), got {raw!r}'
            )
            continue
        found[key.removesuffix("_timeout")] = ms
    arp_count: int | None = None
    if "arp_count" in table:
        raw = table["arp_count"]
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 100:
            r.error(("resources", "arp_count"), "expected a whole number from 0 to 100")
        else:
            arp_count = raw
    retries = ResourceOptions().stop_retries
    if "stop_retries" in table:
        raw = table["stop_retries"]
        if isinstance(raw, bool) or not isinstance(raw, int):
            r.error(("resources", "stop_retries"), "expected a whole number (negative: forever)")
        else:
            retries = raw
    return ResourceOptions(**found, stop_retries=retries, arp_count=arp_count)


def _timing(cf: HaCf, r: _Reader, key: str, value: object) -> None:
    path: tuple[str | int, ...] = ("timing", key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        r.error(path, f'expected a duration ("2s", "500ms" or seconds), got {_type_name(value)}')
        return
    if isinstance(value, str):
        ms = parse_duration(value)
        if ms is None:
            r.error(path, f'bad duration [{value}] (examples: "2s", "500ms", 1.5)')
            return
        # Record it as Heartbeat would have it written.
        written = value if parse_hb_time(value) is not None else _hb_text(ms)
    else:
        ms = int(value * 1000 + 0.5)
        written = str(value)
    if ms < 0 or (ms == 0 and key != "initdead"):
        r.error(path, "must be more than 0")
        return
    cf.raw_timing[key] = ms
    cf.parameters[key] = written
    cf.sources[key] = r.src(path)


def _hb_text(ms: int) -> str:
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms}ms"


def _link(cf: HaCf, r: _Reader, i: int, link: dict[str, object]) -> None:
    base: tuple[str | int, ...] = ("links", i)
    src = r.src(base)
    kind = link.get("type")
    if kind is None:
        r.error(base, f"missing type ({', '.join(LINK_KEYS)})")
        return
    if not isinstance(kind, str) or kind not in LINK_KEYS:
        shown = kind if isinstance(kind, str) else _type_name(kind)
        r.error(
            (*base, "type"),
            f"unknown link type [{shown}] ({', '.join(LINK_KEYS)})"
            f"{did_you_mean(shown, list(LINK_KEYS))}",
        )
        return
    fields = r.table(link, base, ("type", *LINK_KEYS[kind]))

    def s(key: str, required: bool = True) -> str | None:
        if key not in fields:
            if required:
                r.error(base, f"{kind} link needs {key}")
            return None
        return r.string(fields[key], (*base, key))

    def port(default: int) -> int | None:
        if "port" not in fields:
            return default
        p = r.integer(fields["port"], (*base, "port"))
        if p is not None and not 0 < p < 65536:
            r.error((*base, "port"), f"bad port [{p}] (1-65535)")
            return None
        return p

    if kind in ("bcast", "ucast"):
        iface = s("interface")
        p = port(cf.udpport)
        if iface is None or p is None:
            return
        if kind == "bcast":
            cf.media.append(BcastMedium(interface=iface, port=p, source=src))
            return
        peer = s("peer")
        if peer is None:
            return
        ipv6 = ":" in peer
        err = check_peer(peer, ipv6=ipv6)
        if err is not None:
            r.error((*base, "peer"), err.split(": ", 1)[1])
            return
        cf.media.append(UcastMedium(interface=iface, peer=peer, port=p, source=src))
    elif kind == "mcast":
        iface, group = s("interface"), s("group")
        p = port(DEFAULT_UDPPORT) if "port" in fields else None
        if "port" not in fields:
            r.error(base, "mcast link needs port")
        ttl = r.integer(fields.get("ttl", 1), (*base, "ttl"))
        loop = r.boolean(fields.get("loop", False), (*base, "loop"))
        if None in (iface, group, p, ttl, loop):
            return
        assert iface is not None and group is not None
        ipv6 = ":" in group
        values, err = check_mcast_fields(
            [iface, group, str(p), str(ttl), "1" if loop else "0"], ipv6=ipv6
        )
        if values is None:
            r.error(base, (err or "invalid").split(": ", 1)[-1])
            return
        cf.media.append(
            McastMedium(
                interface=iface, group=group, port=values[2], ttl=values[3], loop=values[4],
                source=src,
            )
        )  # fmt: skip
    elif kind == "serial":
        device = s("device")
        baud = cf.baud
        if "baud" in fields:
            b = r.integer(fields["baud"], (*base, "baud"))
            if b is not None and b not in VALID_BAUDS:
                r.error((*base, "baud"), f"bad speed [{b}] ({', '.join(map(str, VALID_BAUDS))})")
                return
            if b is None:
                return
            baud = b
        if device is None:
            return
        if not device.startswith("/"):
            r.error((*base, "device"), f"[{device}] must be an absolute path (/dev/ttyS0)")
            return
        cf.media.append(SerialMedium(device=device, baud=baud, source=src))
    elif kind == "ping":
        host = s("host")
        v6 = r.boolean(fields.get("ipv6", False), (*base, "ipv6"))
        if host is None or v6 is None:
            return
        cf.media.append(PingMedium(host=host, ipv6=v6, source=src))
    else:  # ping_group
        name = s("name")
        hosts = r.strings(fields.get("hosts", []), (*base, "hosts"))
        if name is None or hosts is None:
            return
        if not hosts:
            r.error((*base, "hosts"), "ping_group needs at least one host")
            return
        cf.media.append(PingGroupMedium(group=name, hosts=tuple(hosts), source=src))


def _stonith(cf: HaCf, r: _Reader, i: int, table: dict[str, object], confdir: Path) -> None:
    base: tuple[str | int, ...] = ("stonith", i)
    t = r.table(table, base, ("type", "params", "params_file", "host"))
    typ = r.string(t["type"], (*base, "type")) if "type" in t else None
    if typ is None:
        if "type" not in t:
            r.error(base, "stonith needs type")
        return
    host = r.string(t["host"], (*base, "host")) if "host" in t else None
    if "params_file" in t and "params" in t:
        r.error(base, "give params or params_file, not both")
        return
    params_file: str | None = None
    if "params_file" in t:
        pf = r.string(t["params_file"], (*base, "params_file"))
        if pf is None:
            return
        params_file = str(confdir / pf)
        params = read_stonith_params(params_file) or ""
    else:
        p = r.string(t.get("params", ""), (*base, "params"))
        if p is None:
            return
        params = p
    cf.stonith.append(
        StonithDirective(
            type=typ,
            params=params,
            host=None if host is None else (host if host == "*" else host.lower()),
            params_file=params_file,
            source=r.src(base),
        )
    )


def _respawn(cf: HaCf, r: _Reader, i: int, table: dict[str, object]) -> None:
    base: tuple[str | int, ...] = ("respawn", i)
    t = r.table(table, base, ("user", "command", "failfast"))
    user = r.string(t["user"], (*base, "user")) if "user" in t else None
    raw = t.get("command")
    command: list[str] | None
    if isinstance(raw, str):
        command = raw.split()
    elif raw is None:
        command = None
    else:
        command = r.strings(raw, (*base, "command"))
    failfast = r.boolean(t.get("failfast", False), (*base, "failfast"))
    if user is None or not command or failfast is None:
        if "user" not in t or not command:
            r.error(base, "respawn needs user and command")
        return
    if not command[0].startswith("/"):
        r.error((*base, "command"), f"program [{command[0]}] must be an absolute path")
        return
    cf.respawn.append(
        RespawnDirective(user=user, command=tuple(command), failfast=failfast, source=r.src(base))
    )


GROUP_KEYS = (
    "node", "resources", "monitor", "on_fail", "migration_threshold", "failure_timeout"
)  # fmt: skip
RESOURCE_ENTRY_KEYS = ("name", "monitor", "on_fail")
ON_FAIL_VALUES = tuple(o.value for o in OnFail)
_MONITOR_EXAMPLE = 'monitor = { interval = "5s", timeout = "20s" }'


def _positive_ms(r: _Reader, raw: object, path: tuple[str | int, ...], example: str) -> int | None:
    """A duration above zero ("5s", "500ms", or a number of seconds), else an error."""
    ms: int | None = None
    if isinstance(raw, str):
        ms = parse_duration(raw)
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        ms = int(raw * 1000 + 0.5) if raw > 0 else int(raw * 1000)
    if ms is None:
        r.error(path, f'expected a duration ("5s", "500ms" or seconds), got {_type_name(raw)}')
        return None
    if ms <= 0:
        r.error(path, f"must be more than 0; write e.g. {example}")
        return None
    return ms


def _monitor(r: _Reader, raw: object, path: tuple[str | int, ...]) -> MonitorOptions | None:
    """``monitor = { interval = "5s", timeout = "20s" }`` (timeout defaults to 20s)."""
    t = r.table(raw, path, ("interval", "timeout"))
    if not isinstance(raw, dict):
        return None
    if "interval" not in t:
        r.error(path, f"needs interval, e.g. {_MONITOR_EXAMPLE}")
        return None
    interval = _positive_ms(r, t["interval"], (*path, "interval"), 'interval = "5s"')
    timeout: int | None = MonitorOptions(interval=1).timeout
    if "timeout" in t:
        timeout = _positive_ms(r, t["timeout"], (*path, "timeout"), 'timeout = "20s"')
    if interval is None or timeout is None:
        return None
    return MonitorOptions(interval=interval, timeout=timeout)


def _on_fail(r: _Reader, raw: object, path: tuple[str | int, ...]) -> OnFail | None:
    if isinstance(raw, str) and raw in ON_FAIL_VALUES:
        return OnFail(raw)
    shown = raw if isinstance(raw, str) else _type_name(raw)
    hint = did_you_mean(shown, list(ON_FAIL_VALUES)) if isinstance(raw, str) else ""
    r.error(path, f"unknown value [{shown}]; use restart, failover or ignore{hint}")
    return None


def _resource_entry(
    r: _Reader, entry: object, path: tuple[str | int, ...], src: Source
) -> ResourceSpec | None:
    """One element of ``resources``: a haresources word, or a table with ``name``."""
    monitor: MonitorOptions | None = None
    on_fail: OnFail | None = None
    if isinstance(entry, dict):
        t = r.table(entry, path, RESOURCE_ENTRY_KEYS)
        if "name" not in t:
            example = f'{{ name = "apache2", {_MONITOR_EXAMPLE} }}'
            r.error(path, f"a resource table needs name, e.g. {example}")
            return None
        word = t["name"]
        before = len(r.diags)
        if "monitor" in t:
            monitor = _monitor(r, t["monitor"], (*path, "monitor"))
        if "on_fail" in t:
            on_fail = _on_fail(r, t["on_fail"], (*path, "on_fail"))
        if len(r.diags) > before:
            return None
        path = (*path, "name")
    else:
        word = entry
    if not isinstance(word, str):
        r.error(path, f"expected a haresources word or a table, got {_type_name(word)}")
        return None
    if not word or any(c.isspace() for c in word):
        r.error(path, f"bad resource [{word}] (one haresources word)")
        return None
    spec, err = resource_spec(word, src)
    if spec is None:
        r.error(path, err or "bad resource")
        return None
    if monitor is None and on_fail is None:
        return spec
    return dataclasses.replace(spec, monitor=monitor, on_fail=on_fail)


def _groups(r: _Reader, raw: object) -> list[ResourceGroup]:
    groups: list[ResourceGroup] = []
    for i, g in enumerate(r.array_of_tables(raw, ("groups",))):
        base: tuple[str | int, ...] = ("groups", i)
        t = r.table(g, base, GROUP_KEYS)
        node = r.string(t["node"], (*base, "node")) if "node" in t else None
        entries = t.get("resources")
        if entries is not None and not isinstance(entries, list):
            r.error((*base, "resources"), f"expected an array, got {_type_name(entries)}")
            entries = None
        if node is None or entries is None:
            if "node" not in t or "resources" not in t:
                r.error(base, "a group needs node and resources")
            continue
        if not entries:
            r.error((*base, "resources"), "lists no resources")
            continue
        src = r.src(base)
        before = len(r.diags)
        specs = [
            _resource_entry(r, entry, (*base, "resources", j), src)
            for j, entry in enumerate(entries)
        ]
        group = ResourceGroup(node=node.lower(), resources=(), source=src)
        monitor = group.monitor
        if "monitor" in t:
            monitor = _monitor(r, t["monitor"], (*base, "monitor"))
        on_fail = group.on_fail
        if "on_fail" in t:
            on_fail = _on_fail(r, t["on_fail"], (*base, "on_fail")) or on_fail
        threshold = group.migration_threshold
        if "migration_threshold" in t:
            value = r.integer(t["migration_threshold"], (*base, "migration_threshold"))
            if value is not None and value < 1:
                r.error(
                    (*base, "migration_threshold"),
                    f"must be 1 or more (1 moves the group at its first failure), got {value}",
                )
            elif value is not None:
                threshold = value
        failure_timeout = group.failure_timeout
        if "failure_timeout" in t:
            failure_timeout = _positive_ms(
                r, t["failure_timeout"], (*base, "failure_timeout"), 'failure_timeout = "10m"'
            )
        if len(r.diags) > before:
            continue
        groups.append(
            dataclasses.replace(
                group,
                resources=tuple(s for s in specs if s is not None),
                monitor=monitor,
                on_fail=on_fail,
                migration_threshold=threshold,
                failure_timeout=failure_timeout,
            )
        )
    return groups


def _auth(r: _Reader, raw: object, path: Path, mode: int) -> AuthKeys | None:
    base: tuple[str | int, ...] = ("auth",)
    if raw is None:
        r.error(base, "missing [auth] table: authkeys = PATH, or use = N with [[auth.keys]]")
        return None
    t = r.table(raw, base, ("authkeys", "use", "keys"))
    if "authkeys" in t:
        if "use" in t or "keys" in t:
            r.error(base, "give either authkeys = PATH or inline use/keys, not both")
            return None
        p = r.string(t["authkeys"], (*base, "authkeys"))
        if p is None:
            return None
        keyfile = str(path.parent / p)
        auth, diags = read_authkeys(keyfile)
        r.diags.extend(diags)
        return auth
    if "use" not in t or "keys" not in t:
        r.error(base, "needs authkeys = PATH, or use = N with [[auth.keys]]")
        return None
    perm = authkeys_permission_error(mode, r.file)
    if perm is not None:
        r.error(base, f"inline keys: {perm}")
        return None
    use = r.integer(t["use"], (*base, "use"))
    keys: dict[int, AuthKey] = {}
    methods = [m.value for m in AuthMethod]
    ok = True
    for i, k in enumerate(r.array_of_tables(t["keys"], (*base, "keys"))):
        kp: tuple[str | int, ...] = (*base, "keys", i)
        kt = r.table(k, kp, ("index", "method", "key"))
        idx = r.integer(kt.get("index"), (*kp, "index")) if "index" in kt else None
        method = r.string(kt.get("method"), (*kp, "method")) if "method" in kt else None
        if idx is None or method is None:
            if "index" not in kt or "method" not in kt:
                r.error(kp, "a key needs index and method")
            ok = False
            continue
        if not 0 <= idx <= 15:
            r.error((*kp, "index"), f"auth index [{idx}] out of range (0-15)")
            ok = False
            continue
        if method not in methods:
            r.error(
                (*kp, "method"),
                f"unknown authentication method [{method}] (crc, md5, sha1, sha256)"
                f"{did_you_mean(method, methods)}",
            )
            ok = False
            continue
        m = AuthMethod(method)
        secret: str | None = None
        if "key" in kt:
            secret = r.string(kt["key"], (*kp, "key"))
            if secret is None:
                ok = False
                continue
        if m is AuthMethod.CRC and secret is not None:
            r.error((*kp, "key"), "Auth method [crc] doesn't use a key")
            ok = False
            continue
        if m is not AuthMethod.CRC:
            if not secret:
                r.error(kp, f"Auth method [{method}] requires a key")
                ok = False
                continue
            if any(c.isspace() for c in secret):
                r.error((*kp, "key"), "a key must be a single word (no whitespace), as in authkeys")
                ok = False
                continue
        if idx in keys:
            r.error((*kp, "index"), f"auth index [{idx}] listed twice")
            ok = False
            continue
        keys[idx] = AuthKey(
            index=idx,
            method=m,
            key=None if secret is None else secret.encode("utf-8"),
            source=r.src(kp),
        )
    if use is None or not ok:
        return None
    if use not in keys:
        r.error((*base, "use"), f"Auth Key [{use}] not found in auth.keys")
        return None
    return AuthKeys(outbound=use, keys=tuple(sorted(keys.values(), key=lambda k: k.index)))


__all__ = ["HEARTBEAT_KEYS", "format_path", "key_lines", "line_at", "load_toml"]
