"""Render a :class:`Config` as pulse TOML (``pulse convert``).

The output loads back (:func:`pulse.config.load_config`) to an equal Config,
apart from ``origin`` and ``source`` fields. To achieve that, values that ha.cf
recorded as written (``Config.parameters``) are emitted in a form that records
the same text again, and only the directives that were written are emitted:
derived values (warntime, initdead, ...) are left for the loader to derive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pulse.config.durations import format_ms
from pulse.config.model import (
    DEFAULT_UDPPORT,
    BcastMedium,
    Config,
    McastMedium,
    Medium,
    MonitorOptions,
    PingGroupMedium,
    PingMedium,
    ResourceGroup,
    ResourceOptions,
    ResourceSpec,
    SerialMedium,
    UcastMedium,
)
from pulse.config.toml import CLUSTER_KEYS, HEARTBEAT_KEYS, LOGGING_KEYS, TIMING_KEYS

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def quote(text: str) -> str:
    """A TOML basic string."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{ord(ch) if ord(ch) < 0xD800 else 0xFFFD:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else quote(name)


def value(v: object) -> str:
    """Any TOML value (nested tables become inline tables)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{key(str(k))} = {value(x)}" for k, x in v.items()) + "}"
    return quote(str(v))


def _number_or_text(text: str) -> object:
    """A time as written: a TOML number when that renders back identically."""
    if re.fullmatch(r"0|[1-9][0-9]*", text):
        return int(text)
    if re.fullmatch(r"[0-9]+\.[0-9]+", text):
        try:
            if str(float(text)) == text:
                return float(text)
        except ValueError:
            pass
    return text


def _bool_or_text(text: str) -> object:
    if text == "true":
        return True
    if text == "false":
        return False
    return text


def _int_or_text(text: str) -> object:
    return int(text) if re.fullmatch(r"0|[1-9][0-9]*", text) else text


def _medium(m: Medium) -> dict[str, object]:
    if isinstance(m, BcastMedium):
        return {"type": "bcast", "interface": m.interface, "port": m.port}
    if isinstance(m, UcastMedium):
        return {"type": "ucast", "interface": m.interface, "peer": m.peer, "port": m.port}
    if isinstance(m, McastMedium):
        return {
            "type": "mcast",
            "interface": m.interface,
            "group": m.group,
            "port": m.port,
            "ttl": m.ttl,
            "loop": m.loop,
        }
    if isinstance(m, SerialMedium):
        return {"type": "serial", "device": m.device, "baud": m.baud}
    if isinstance(m, PingMedium):
        out: dict[str, object] = {"type": "ping", "host": m.host}
        if m.ipv6:
            out["ipv6"] = True
        return out
    assert isinstance(m, PingGroupMedium)
    return {"type": "ping_group", "name": m.group, "hosts": list(m.hosts)}


def _monitor_table(m: MonitorOptions) -> dict[str, object]:
    return {"interval": format_ms(m.interval), "timeout": format_ms(m.timeout)}


def _resource_entry(spec: ResourceSpec) -> object:
    """A haresources word, or a table when the resource overrides its group's monitoring."""
    if spec.monitor is None and spec.on_fail is None:
        return spec.raw
    entry: dict[str, object] = {"name": spec.raw}
    if spec.monitor is not None:
        entry["monitor"] = _monitor_table(spec.monitor)
    if spec.on_fail is not None:
        entry["on_fail"] = spec.on_fail.value
    return entry


# Written, commented, under a group that does not monitor (every ha.cf group): how to
# turn monitoring on (docs/resources.md#monitoring).
MONITOR_HINT = (
    '# monitor = { interval = "10s", timeout = "20s" }   # check every resource (off: Heartbeat)',
    '# on_fail = "restart"                               # restart | failover | ignore',
    "# migration_threshold = 3                           # failures here before the group moves",
    '# failure_timeout = "10m"                           # forget older failures (default never)',
)


def _monitoring(group: ResourceGroup) -> list[str]:
    """The group's monitoring keys as set, or the commented hint when none is set."""
    default = ResourceGroup(node=group.node, resources=group.resources)
    out: list[str] = []
    if group.monitor is not None:
        out.append(f"monitor = {value(_monitor_table(group.monitor))}")
    if group.on_fail is not default.on_fail:
        out.append(f"on_fail = {quote(group.on_fail.value)}")
    if group.migration_threshold != default.migration_threshold:
        out.append(f"migration_threshold = {group.migration_threshold}")
    if group.failure_timeout is not None:
        out.append(f"failure_timeout = {quote(format_ms(group.failure_timeout))}")
    if out or group.monitored:
        return out
    return list(MONITOR_HINT)


def to_toml(config: Config, *, header: str | None = None) -> str:
    """The TOML text for ``config``."""
    p = config.parameters
    lines: list[str] = []
    if header:
        lines.extend(f"# {h}" if h else "#" for h in header.splitlines())
        lines.append("")

    def kv(name: str, v: object) -> None:
        lines.append(f"{key(name)} = {value(v)}")

    lines.append("[cluster]")
    if "cluster" in p:
        kv("name", p["cluster"])
    kv("nodes", list(config.nodes))
    for toml_key, directive in CLUSTER_KEYS.items():
        if directive not in p:
            continue
        text = p[directive]
        if directive == "udpport" and text == str(DEFAULT_UDPPORT):
            continue  # the default; udpport is always recorded
        if directive in ("udpport", "baud", "hopfudge", "max_rexmit_delay"):
            kv(toml_key, _int_or_text(text))
        else:
            kv(toml_key, text)
    if config.resource_dir is not None:
        kv("resource_dir", config.resource_dir)
    if config.ipfail and not any(r.is_ipfail for r in config.respawn):
        kv("ipfail", True)

    timing_lines: list[tuple[str, object]] = []
    for name in TIMING_KEYS:
        written = p.get(name)
        if written is None:
            continue
        derived = name in ("warntime", "initdead", "deadping")
        if derived and written == f"{getattr(config.timing, name)}ms":
            continue  # recorded by Heartbeat's derivation; the loader derives it again
        timing_lines.append((name, _number_or_text(written)))
    if timing_lines:
        lines.extend(["", "[timing]"])
        for name, v in timing_lines:
            kv(name, v)

    for m in config.media:
        lines.extend(["", "[[links]]"])
        for k, v in _medium(m).items():
            kv(k, v)

    lines.extend(["", "[auth]"])
    if config.auth.path is not None:
        kv("authkeys", config.auth.path)
    else:
        kv("use", config.auth.outbound)
        for ak in config.auth.keys:
            lines.extend(["", "[[auth.keys]]"])
            kv("index", ak.index)
            kv("method", ak.method.value)
            if ak.key is not None:
                kv("key", ak.key.decode("utf-8", errors="replace"))

    for g in config.groups:
        lines.extend(["", "[[groups]]"])
        kv("node", g.node)
        kv("resources", [_resource_entry(r) for r in g.resources])
        lines.extend(_monitoring(g))

    log_lines: list[tuple[str, object]] = []
    for toml_key, directive in LOGGING_KEYS.items():
        if directive not in p:
            continue
        text = p[directive]
        if directive == "debug":
            log_lines.append((toml_key, _int_or_text(text)))
        elif directive in ("syslogmsgfmt", "use_logd"):
            log_lines.append((toml_key, _bool_or_text(text)))
        else:
            log_lines.append((toml_key, text))
    if log_lines:
        lines.extend(["", "[logging]"])
        for k, v in log_lines:
            kv(k, v)

    for st in config.stonith:
        lines.extend(["", "[[stonith]]"])
        kv("type", st.type)
        if st.params_file is not None:
            kv("params_file", st.params_file)
        else:
            kv("params", st.params)
        if st.host is not None:
            kv("host", st.host)

    for r in config.respawn:
        lines.extend(["", "[[respawn]]"])
        kv("user", r.user)
        kv("command", list(r.command))
        if r.failfast:
            kv("failfast", True)

    extras = [(k, p[k]) for k in HEARTBEAT_KEYS if k in p]
    if extras:
        lines.extend(
            ["", "# Other ha.cf directives, recorded as written (HA_<name>)", "[heartbeat]"]
        )
        for k, text in extras:
            kv(k, text)

    rt = config.resource_options
    if rt != ResourceOptions():
        lines.extend(["", "[resources]"])
        lines.append(f"start_timeout = {quote(f'{rt.start}ms')}")
        lines.append(f"stop_timeout = {quote(f'{rt.stop}ms')}")
        lines.append(f"status_timeout = {quote(f'{rt.status}ms')}")
        lines.append(f"stop_retries = {rt.stop_retries}")
        if rt.arp_count is not None:
            lines.append(f"arp_count = {rt.arp_count}")
        if rt.arp_interval is not None:
            lines.append(f"arp_interval = {quote(f'{rt.arp_interval}ms')}")
    if config.metrics is not None:
        lines.extend(["", "[metrics]", f"listen = {quote(str(config.metrics))}"])
    if config.control_group is not None:
        lines.extend(["", "[control]", f"group = {quote(config.control_group)}"])
    for script in config.notify:
        lines.extend(["", "[[notify]]", f"command = {value(list(script.command))}"])
        lines.append(f"events = {value(list(script.events))}")
        lines.append(f"timeout = {quote(f'{script.timeout}ms')}")
    if config.disabled_plugins:
        lines.extend(["", "[plugins]", f"disable = {value(list(config.disabled_plugins))}"])
    for name, table in config.plugins.items():
        lines.extend(["", f"[plugins.{key(name)}]"])
        for k, v in table.items():
            kv(k, v)
    return "\n".join(lines) + "\n"


__all__ = ["quote", "to_toml"]
