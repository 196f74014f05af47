"""ha.cf, read as Heartbeat 3.0.6 reads it (docs/heartbeat.md#hacf-reading-rules).

``#`` comments, case-sensitive directives, per-token vs whole-line directives,
``udpport``/``baud`` read once by the first medium line of a kind. :class:`HaCf`
collects what the lines say; :mod:`pulse.config.assemble` turns it into a Config.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pulse.config.checks import (
    diagnostic,
)
from pulse.config.durations import parse_bool, parse_hb_time, parse_int
from pulse.config.model import (
    DEFAULT_BAUD,
    DEFAULT_UDPPORT,
    VALID_BAUDS,
    AutoFailback,
    BcastMedium,
    McastMedium,
    Medium,
    PingGroupMedium,
    PingMedium,
    RespawnDirective,
    SerialMedium,
    Source,
    StonithDirective,
    UcastMedium,
)
from pulse.config.words import (
    BLANKS,
    MAXLINE,
    SEPARATORS,
    WHITESPACE,
    decode,
    did_you_mean,
    physical_lines,
    split_tokens,
)
from pulse.errors import Diagnostic

SYSLOG_FACILITIES = frozenset(
    {"auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog",
     "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
     "local7"}
)  # fmt: skip

# Option directives (per token), whole-line directives, media (docs/heartbeat.md#hacf-reading-rules)
OPTION_DIRECTIVES = (
    "node", "keepalive", "deadtime", "warntime", "initdead", "deadping", "udpport", "baud",
    "hopfudge", "auto_failback", "nice_failback", "logfile", "debugfile", "logfacility",
    "use_logd", "conn_logd_time", "syslogmsgfmt", "log_badpack", "debug", "realtime",
    "rtprio", "memreserve", "watchdog", "hbgenmethod", "uuidfrom", "autojoin", "msgfmt",
    "compression", "compression_threshold", "traditional_compression", "max_rexmit_delay",
    "coredumps", "coreroot", "use_apphbd", "env", "cluster", "quorum_server", "pacemaker",
    "crm", "crm_daemon_dir", "crmd_spawns_pengine", "record_config_changes",
    "record_pengine_inputs", "enable_config_writes",
)  # fmt: skip
WHOLE_LINE_DIRECTIVES = ("apiauth", "respawn", "failfast", "stonith", "stonith_host")
TOKEN_MEDIA = ("bcast", "serial", "ping", "ping6")
LINE_MEDIA = ("mcast", "mcast6", "ucast", "ucast6", "ping_group")
ALL_DIRECTIVES = OPTION_DIRECTIVES + WHOLE_LINE_DIRECTIVES + TOKEN_MEDIA + LINE_MEDIA
# Directives recorded only (no pulse behaviour), with a validator kind.
BOOLEAN_DIRECTIVES = frozenset(
    {"use_logd", "syslogmsgfmt", "log_badpack", "realtime", "traditional_compression",
     "coredumps", "use_apphbd", "crmd_spawns_pengine", "record_config_changes",
     "record_pengine_inputs", "enable_config_writes", "nice_failback"}
)  # fmt: skip
TIME_DIRECTIVES = ("keepalive", "deadtime", "warntime", "initdead", "deadping")
PACEMAKER_ON_WORDS = frozenset({"respawn", "minimal", "manual", "ccm-only", "valgrind"})


def check_mcast_fields(
    fields: list[str], *, ipv6: bool
) -> tuple[tuple[str, str, int, int, bool] | None, str | None]:
    """Validate ``IF GROUP PORT TTL LOOP``; returns (values, None) or (None, error)."""
    kind = "mcast6" if ipv6 else "mcast"
    if len(fields) < 5:
        return None, f"{kind}: needs IF GROUP PORT TTL LOOP (5 fields, got {len(fields)})"
    iface, group, port_s, ttl_s, loop_s = fields[:5]
    try:
        addr = ipaddress.ip_address(group)
    except ValueError:
        return None, f"{kind}: [{group}] is not an IP address"
    if ipv6 != (addr.version == 6) or not addr.is_multicast:
        want = "an IPv6 multicast group (ff00::/8)" if ipv6 else "in 224.0.0.0/4"
        return None, f"{kind}: group [{group}] must be {want}"
    port = parse_int(port_s)
    if port is None or not 0 < port < 65536:
        return None, f"{kind}: bad port [{port_s}] (1-65535)"
    ttl = parse_int(ttl_s)
    max_ttl = 255 if ipv6 else 4
    if ttl is None or not 0 <= ttl <= max_ttl:
        return None, f"{kind}: bad {'hops' if ipv6 else 'ttl'} [{ttl_s}] (0-{max_ttl})"
    if loop_s not in ("0", "1"):
        return None, f"{kind}: bad loop [{loop_s}] (0 or 1)"
    return (iface, group, port, ttl, loop_s == "1"), None


def check_peer(peer: str, *, ipv6: bool) -> str | None:
    """An error message if ``peer`` cannot be a ucast/ucast6 peer."""
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        if ipv6:
            return f"ucast6: [{peer}] is not an IPv6 address"
        if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", peer) is None:
            return f"ucast: [{peer}] is neither an IP address nor a host name"
        return None
    if ipv6 != (addr.version == 6):
        return f"{'ucast6' if ipv6 else 'ucast'}: [{peer}] is not an IPv{6 if ipv6 else 4} address"
    return None


# --------------------------------------------------------------------------- ha.cf


@dataclass(slots=True)
class HaCf:
    """What ha.cf says (mutable only while :func:`parse_hacf` runs)."""

    file: str
    nodes: list[str] = field(default_factory=list)
    media: list[Medium] = field(default_factory=list)
    raw_timing: dict[str, int] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    udpport: int = DEFAULT_UDPPORT
    baud: int = DEFAULT_BAUD
    hopfudge: int = 1
    auto_failback: AutoFailback | None = None
    auto_failback_onoff_seen: bool = False
    logfile: str | None = None
    debugfile: str | None = None
    logfacility: str | None = None
    debug: int = 0
    syslogmsgfmt: bool = True
    use_logd: bool | None = None
    cluster: str = "linux-ha"
    msgfmt: str = "classic"
    hbgenmethod: str = "file"
    max_rexmit_delay: int = 250
    watchdog: str | None = None
    stonith: list[StonithDirective] = field(default_factory=list)
    respawn: list[RespawnDirective] = field(default_factory=list)
    ipfail: bool = False  # TOML's [cluster] ipfail (ha.cf: a `respawn … ipfail` line)
    env: list[tuple[str, str]] = field(default_factory=list)
    apiauth_clients: dict[str, Source] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    # Port/baud cached by the first line of each plugin (ordering quirk).
    plugin_port: dict[str, tuple[int, Source]] = field(default_factory=dict)
    serial_baud: tuple[int, Source] | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, line: int, msg: str) -> None:
        self.diagnostics.append(diagnostic(Source(self.file, line), msg))

    def medium_error(self, line: int, msg: str) -> None:
        self.failed.add("media")
        self.error(line, msg)

    def warn(self, line: int, msg: str) -> None:
        self.diagnostics.append(diagnostic(Source(self.file, line), msg, warning=True))


def parse_hacf(data: bytes, file: str) -> HaCf:
    """Parse ha.cf bytes; every problem is collected in ``result.diagnostics``."""
    cf = HaCf(file=file)
    for lineno, raw in physical_lines(data):
        if len(raw) + 1 > MAXLINE:
            cf.error(lineno, f"line longer than {MAXLINE} bytes")
            continue
        text = decode(raw).split("#", 1)[0].lstrip(WHITESPACE)
        text = text.split("\r", 1)[0]
        if not text.strip():
            continue
        parts = BLANKS.split(text.strip(" \t\f"), maxsplit=1)
        name = parts[0]
        rest = parts[1].lstrip(SEPARATORS) if len(parts) > 1 else ""
        if name == "udp":
            cf.warn(lineno, "directive [udp] is obsolete; treated as bcast (write bcast)")
            name = "bcast"
        if name in ("normalpoll", "hbaping"):
            cf.error(lineno, f"directive [{name}] is not supported (not built into Heartbeat 3.0.6 "
                             "as shipped by Debian, nor into pulse)")  # fmt: skip
            continue
        if name not in ALL_DIRECTIVES:
            cf.error(
                lineno, f"Illegal directive [{name}] in {file}{did_you_mean(name, ALL_DIRECTIVES)}"
            )
            continue
        if not rest.strip(SEPARATORS):
            cf.error(lineno, f"{name}: missing value")
            continue
        src = Source(file, lineno)
        if name in OPTION_DIRECTIVES or name in TOKEN_MEDIA:
            for token in split_tokens(rest):
                _apply_token(cf, name, token, src)
        else:
            _apply_line(cf, name, rest.strip(), src)
    return cf


def _apply_token(cf: HaCf, name: str, value: str, src: Source) -> None:
    if name in TOKEN_MEDIA:
        _token_medium(cf, name, value, src)
        return
    if name == "node":
        cf.nodes.append(value.lower())
        cf.sources.setdefault("nodes", src)
        return
    handler = OPTION_HANDLERS.get(name)
    if handler is None or handler(cf, value, src):
        cf.parameters[name] = value  # as written; the last one wins
        cf.sources[name] = src


def _token_medium(cf: HaCf, name: str, value: str, src: Source) -> None:
    cf.sources.setdefault("media", src)
    if name == "bcast":
        port = _plugin_port(cf, "bcast", src)
        cf.media.append(BcastMedium(interface=value, port=port, source=src))
    elif name == "serial":
        if not value.startswith("/"):
            cf.medium_error(
                src.line, f"serial: device [{value}] must be an absolute path (/dev/ttyS0)"
            )
            return
        if cf.serial_baud is None:
            cf.serial_baud = (cf.baud, src)
        cf.media.append(SerialMedium(device=value, baud=cf.serial_baud[0], source=src))
    else:  # ping, ping6
        ipv6 = name == "ping6"
        if ipv6:
            try:
                if ipaddress.ip_address(value).version != 6:
                    raise ValueError(value)
            except ValueError:
                cf.medium_error(src.line, f"ping6: [{value}] is not an IPv6 address")
                return
        cf.media.append(PingMedium(host=value, ipv6=ipv6, source=src))


def _plugin_port(cf: HaCf, plugin: str, src: Source) -> int:
    cached = cf.plugin_port.get(plugin)
    if cached is None:
        cached = (cf.udpport, src)
        cf.plugin_port[plugin] = cached
    return cached[0]


def _apply_line(cf: HaCf, name: str, rest: str, src: Source) -> None:
    words = split_tokens(rest) if name in LINE_MEDIA else BLANKS.split(rest)
    words = [w for w in words if w]
    line = src.line
    if name in ("mcast", "mcast6"):
        cf.sources.setdefault("media", src)
        values, err = check_mcast_fields(words, ipv6=name == "mcast6")
        if err is not None or values is None:
            cf.medium_error(line, err or f"{name}: invalid")
            return
        iface, group, port, ttl, loop = values
        cf.media.append(
            McastMedium(interface=iface, group=group, port=port, ttl=ttl, loop=loop, source=src)
        )
    elif name in ("ucast", "ucast6"):
        cf.sources.setdefault("media", src)
        if len(words) < 2:
            cf.medium_error(line, f"{name}: needs IF PEER")
            return
        perr = check_peer(words[1], ipv6=name == "ucast6")
        if perr is not None:
            cf.medium_error(line, perr)
            return
        if len(words) > 2:
            cf.warn(line, f"{name}: only one peer per line; [{' '.join(words[2:])}] ignored "
                          "(repeat the ucast line for more peers)")  # fmt: skip
        port = _plugin_port(cf, "ucast", src)
        cf.media.append(UcastMedium(interface=words[0], peer=words[1], port=port, source=src))
    elif name == "ping_group":
        cf.sources.setdefault("media", src)
        if len(words) < 2:
            cf.medium_error(line, "ping_group: needs NAME HOST [HOST...]")
            return
        cf.media.append(PingGroupMedium(group=words[0], hosts=tuple(words[1:]), source=src))
    elif name == "apiauth":
        apply_apiauth(cf, words, src)
    elif name in ("respawn", "failfast"):
        if len(words) < 2:
            cf.error(line, f"{name}: needs USER /absolute/path [ARGS...]")
            return
        if not words[1].startswith("/"):
            cf.error(line, f"{name}: program [{words[1]}] must be an absolute path")
            return
        cf.respawn.append(
            RespawnDirective(
                user=words[0], command=tuple(words[1:]), failfast=name == "failfast", source=src
            )
        )
    elif name == "stonith":
        if len(words) != 2:
            cf.error(line, "stonith: needs TYPE /path/to/parameter-file")
            return
        params = read_stonith_params(words[1])
        cf.stonith.append(
            StonithDirective(type=words[0], params=params or "", params_file=words[1], source=src)
        )
    elif name == "stonith_host":
        if len(words) < 3:
            cf.error(line, "stonith_host: needs HOST|* TYPE PARAMS...")
            return
        host = words[0] if words[0] == "*" else words[0].lower()
        params = rest.split(None, 2)[2] if len(rest.split(None, 2)) == 3 else ""
        cf.stonith.append(
            StonithDirective(type=words[1], params=params.strip(), host=host, source=src)
        )


def apply_apiauth(cf: HaCf, words: list[str], src: Source) -> None:
    if len(words) < 2:
        cf.error(src.line, "apiauth: needs CLIENT uid=LIST and/or gid=LIST")
        return
    client = words[0]
    for w in words[1:]:
        key, _, val = w.partition("=")
        if key not in ("uid", "gid") or not val:
            cf.error(src.line, f"apiauth: bad item [{w}] (expected uid=a,b or gid=c,d)")
            return
    if client in cf.apiauth_clients:
        cf.error(
            src.line, f"apiauth: client [{client}] already given at {cf.apiauth_clients[client]}"
        )
        return
    cf.apiauth_clients[client] = src
    cf.parameters["apiauth"] = " ".join(words)


def read_stonith_params(path: str) -> str | None:
    """The first line of ``path`` not starting with ``#``; None if unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except (OSError, ValueError):
        return None
    for raw in data.split(b"\n"):
        if raw.startswith(b"#"):
            continue
        return decode(raw).rstrip("\r")
    return ""


# Each handler validates one token, applies it and returns whether it was accepted.
def _time(cf: HaCf, name: str, value: str, src: Source, *, allow_zero: bool = False) -> int | None:
    ms = parse_hb_time(value)
    if ms is None:
        hint = "examples: 2, 1.5, 500ms"
        if value.lower() in ("ms", "msec", "us", "usec", "s", "sec"):
            hint = "a unit must follow the number without a space: 500ms"
        cf.error(src.line, f"{name}: bad time [{value}] ({hint})")
        return None
    if ms < 0 or (ms == 0 and not allow_zero):
        cf.error(src.line, f"{name}: must be more than 0 (got {value})")
        return None
    return ms


def _bool(cf: HaCf, name: str, value: str, src: Source) -> bool | None:
    b = parse_bool(value)
    if b is None:
        cf.error(src.line, f"{name}: bad boolean [{value}] (use on/off, yes/no, true/false)")
    return b


def _int_range(cf: HaCf, name: str, value: str, src: Source, lo: int, hi: int) -> int | None:
    n = parse_int(value)
    if n is None or not lo <= n <= hi:
        cf.error(src.line, f"{name}: bad value [{value}] (integer {lo}-{hi})")
        return None
    return n


def _choice(cf: HaCf, name: str, value: str, src: Source, choices: tuple[str, ...]) -> bool:
    if value not in choices:
        cf.error(
            src.line,
            f"{name}: bad value [{value}] (one of {', '.join(choices)})"
            f"{did_you_mean(value, choices)}",
        )
        return False
    return True


def _h_time(name: str, *, allow_zero: bool = False) -> Callable[[HaCf, str, Source], bool]:
    def h(cf: HaCf, value: str, src: Source) -> bool:
        ms = _time(cf, name, value, src, allow_zero=allow_zero)
        if ms is None:
            return False
        if name in TIME_DIRECTIVES:
            cf.raw_timing[name] = ms
        return True

    return h


def _h_bool(name: str) -> Callable[[HaCf, str, Source], bool]:
    return lambda cf, v, s: _bool(cf, name, v, s) is not None


def _h_udpport(cf: HaCf, value: str, src: Source) -> bool:
    port = _int_range(cf, "udpport", value, src, 1, 65535)
    if port is None:
        return False
    for plugin, (used, first) in sorted(cf.plugin_port.items()):
        if used != port:
            cf.warn(
                src.line,
                f"udpport {port} comes after the first {plugin} line ({first}), which keeps "
                f"port {used}: Heartbeat reads udpport once, at the first {plugin} line; "
                "move udpport above the media lines",
            )
    cf.udpport = port
    return True


def _h_baud(cf: HaCf, value: str, src: Source) -> bool:
    if "baud" in cf.sources:
        cf.error(src.line, f"baud: may only be given once (first at {cf.sources['baud']})")
        return False
    n = parse_int(value)
    if n is None or n not in VALID_BAUDS:
        cf.error(src.line, f"baud: bad speed [{value}] (one of {', '.join(map(str, VALID_BAUDS))})")
        return False
    if cf.serial_baud is not None and cf.serial_baud[0] != n:
        cf.warn(
            src.line,
            f"baud {n} comes after the first serial line ({cf.serial_baud[1]}), which keeps "
            f"{cf.serial_baud[0]} baud; move baud above the serial lines",
        )
    cf.baud = n
    return True


def _h_hopfudge(cf: HaCf, value: str, src: Source) -> bool:
    n = _int_range(cf, "hopfudge", value, src, 0, 255)
    if n is None:
        return False
    cf.hopfudge = n
    return True


def _h_auto_failback(cf: HaCf, value: str, src: Source) -> bool:
    if value.lower() == "legacy":
        cf.auto_failback = AutoFailback.LEGACY
        return True
    b = parse_bool(value)
    if b is None:
        cf.error(src.line, f"auto_failback: bad value [{value}] (on, off or legacy)")
        return False
    cf.auto_failback = AutoFailback.ON if b else AutoFailback.OFF
    cf.auto_failback_onoff_seen = True
    return True


def _h_nice_failback(cf: HaCf, value: str, src: Source) -> bool:
    if _bool(cf, "nice_failback", value, src) is None:
        return False
    if cf.auto_failback_onoff_seen:
        cf.auto_failback = AutoFailback.OFF
        cf.parameters["auto_failback"] = "off"
        what = "auto_failback off"
    else:
        cf.auto_failback = AutoFailback.LEGACY
        cf.parameters["auto_failback"] = "legacy"
        what = "auto_failback legacy"
    cf.warn(src.line, f"nice_failback is obsolete; treated as {what} (use auto_failback on|off)")
    return True


def _h_path(attr: str) -> Callable[[HaCf, str, Source], bool]:
    def h(cf: HaCf, value: str, src: Source) -> bool:
        setattr(cf, attr, value)
        return True

    return h


def _h_logfacility(cf: HaCf, value: str, src: Source) -> bool:
    if value != "none" and value not in SYSLOG_FACILITIES:
        choices = sorted(SYSLOG_FACILITIES | {"none"})
        cf.error(
            src.line,
            f"logfacility: unknown syslog facility [{value}]{did_you_mean(value, choices)}",
        )
        return False
    cf.logfacility = value
    return True


def _h_use_logd(cf: HaCf, value: str, src: Source) -> bool:
    b = _bool(cf, "use_logd", value, src)
    if b is None:
        return False
    cf.use_logd = b
    return True


def _h_syslogmsgfmt(cf: HaCf, value: str, src: Source) -> bool:
    b = _bool(cf, "syslogmsgfmt", value, src)
    if b is None:
        return False
    cf.syslogmsgfmt = b
    return True


def _h_debug(cf: HaCf, value: str, src: Source) -> bool:
    n = _int_range(cf, "debug", value, src, 0, 255)
    if n is None:
        return False
    cf.debug = n
    return True


def _h_int(name: str, lo: int, hi: int) -> Callable[[HaCf, str, Source], bool]:
    return lambda cf, v, s: _int_range(cf, name, v, s, lo, hi) is not None


def _h_watchdog(cf: HaCf, value: str, src: Source) -> bool:
    if cf.watchdog is not None:
        cf.error(src.line, "watchdog: may only be given once")
        return False
    cf.watchdog = value
    return True


def _h_choice(
    name: str, choices: tuple[str, ...], attr: str | None = None
) -> Callable[[HaCf, str, Source], bool]:
    def h(cf: HaCf, value: str, src: Source) -> bool:
        if not _choice(cf, name, value, src, choices):
            return False
        if attr is not None:
            setattr(cf, attr, value)
        return True

    return h


def _h_autojoin(cf: HaCf, value: str, src: Source) -> bool:
    if not _choice(cf, "autojoin", value, src, ("none", "other", "any")):
        return False
    if value != "none":
        cf.error(
            src.line,
            f"autojoin {value}: R1 style resource management conflicts with autojoin; "
            "pulse runs haresources (v1) clusters, so autojoin must be none",
        )
        return False
    return True


def _h_pacemaker(name: str) -> Callable[[HaCf, str, Source], bool]:
    def h(cf: HaCf, value: str, src: Source) -> bool:
        for other in ("pacemaker", "crm"):
            if other in cf.sources:
                cf.error(src.line, f"{name}: pacemaker/crm may only be given once")
                return False
        b = parse_bool(value)
        if b is None and value.lower() not in PACEMAKER_ON_WORDS:
            cf.error(src.line, f"{name}: bad value [{value}] (on/off, respawn, minimal, ...)")
            return False
        if b is not False:
            cf.error(
                src.line,
                f"{name} {value}: pulse runs haresources (v1) clusters; pacemaker/crm must be off",
            )
            return False
        return True

    return h


def _h_compression(cf: HaCf, value: str, src: Source) -> bool:
    return _choice(cf, "compression", value, src, ("zlib", "bz2"))


def _h_env(cf: HaCf, value: str, src: Source) -> bool:
    name, eq, text = value.partition("=")
    if not eq or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is None:
        cf.error(src.line, f"env: expected NAME=value, got [{value}]")
        return False
    cf.env.append((name, text))
    return True


def _h_cluster(cf: HaCf, value: str, src: Source) -> bool:
    cf.cluster = value
    return True


def _h_max_rexmit(cf: HaCf, value: str, src: Source) -> bool:
    n = _int_range(cf, "max_rexmit_delay", value, src, 1, 10**9)
    if n is None:
        return False
    cf.max_rexmit_delay = n
    return True


def _h_rtprio(cf: HaCf, value: str, src: Source) -> bool:
    return _int_range(cf, "rtprio", value, src, 1, 99) is not None


def _h_any(cf: HaCf, value: str, src: Source) -> bool:
    return True


OPTION_HANDLERS: dict[str, Callable[[HaCf, str, Source], bool]] = {
    "keepalive": _h_time("keepalive"),
    "deadtime": _h_time("deadtime"),
    "warntime": _h_time("warntime"),
    "initdead": _h_time("initdead", allow_zero=True),
    "deadping": _h_time("deadping"),
    "udpport": _h_udpport,
    "baud": _h_baud,
    "hopfudge": _h_hopfudge,
    "auto_failback": _h_auto_failback,
    "nice_failback": _h_nice_failback,
    "logfile": _h_path("logfile"),
    "debugfile": _h_path("debugfile"),
    "logfacility": _h_logfacility,
    "use_logd": _h_use_logd,
    "conn_logd_time": _h_time("conn_logd_time"),
    "syslogmsgfmt": _h_syslogmsgfmt,
    "debug": _h_debug,
    "rtprio": _h_rtprio,
    "memreserve": _h_int("memreserve", 1, 10**9),
    "watchdog": _h_watchdog,
    "hbgenmethod": _h_choice("hbgenmethod", ("file", "time"), "hbgenmethod"),
    "uuidfrom": _h_choice("uuidfrom", ("file", "nodename")),
    "autojoin": _h_autojoin,
    "msgfmt": _h_choice("msgfmt", ("classic", "netstring"), "msgfmt"),
    "compression": _h_compression,
    "compression_threshold": _h_int("compression_threshold", 1, 10**9),
    "max_rexmit_delay": _h_max_rexmit,
    "env": _h_env,
    "cluster": _h_cluster,
    "coreroot": _h_any,
    "quorum_server": _h_any,
    "crm_daemon_dir": _h_any,
    "pacemaker": _h_pacemaker("pacemaker"),
    "crm": _h_pacemaker("crm"),
}
for _name in BOOLEAN_DIRECTIVES - set(OPTION_HANDLERS):
    OPTION_HANDLERS[_name] = _h_bool(_name)
