"""Heartbeat's own configuration files: ha.cf, authkeys and haresources.

The parsers are pure (text in, values and diagnostics out) and reproduce
Heartbeat 3.0.6's reading rules, quirks included (docs/heartbeat.md, ha.cf to haresources):

* ha.cf: ``#`` comments, case-sensitive directives, per-token vs whole-line
  directives, ``udpport``/``baud`` read once by the first medium line of a kind;
* authkeys: ``auth N`` must precede its key line, one-word keys, permissions;
* haresources: comments removed only on a logical line's first physical line,
  ``\\`` joins with nothing inserted, implicit ``IPaddr`` for dotted words.

:func:`load_legacy` does the file I/O and assembles a :class:`Config`.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pulse.config.checks import (
    IMPLICIT_IP,
    Locator,
    RawTiming,
    diagnostic,
    path_exists,
    resolve_timing,
    validate_cluster,
)
from pulse.config.durations import parse_bool, parse_hb_time, parse_int
from pulse.config.model import (
    DEFAULT_BAUD,
    DEFAULT_UDPPORT,
    VALID_BAUDS,
    AuthKey,
    AuthKeys,
    AuthMethod,
    AutoFailback,
    BcastMedium,
    Config,
    Logging,
    McastMedium,
    Medium,
    PingGroupMedium,
    PingMedium,
    ResourceGroup,
    ResourceSpec,
    RespawnDirective,
    SerialMedium,
    Source,
    StonithDirective,
    UcastMedium,
)
from pulse.errors import Diagnostic, Severity

MAXLINE = 5120  # Heartbeat's line buffer (bytes)
MAX_AUTH_INDEX = 15
SEPARATORS = ", \t\n\r\f"
WHITESPACE = " \t\n\r\f"
_SPLIT = re.compile(r"[, \t\n\r\f]+")
_WS = re.compile(r"[ \t\n\r\f]+")

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


# --------------------------------------------------------------------------- small helpers


def did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean X?)`` or ""."""
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f" (did you mean {lowered[word.lower()]}?)"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def split_tokens(text: str) -> list[str]:
    """Split on Heartbeat's separators: commas and whitespace."""
    return [t for t in _SPLIT.split(text) if t]


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


def resource_spec(word: str, source: Source | None) -> tuple[ResourceSpec | None, str | None]:
    """ResourceManager's reading of one haresources word (docs/heartbeat.md#script-resolution)."""
    if IMPLICIT_IP.fullmatch(word):
        return ResourceSpec(raw=word, agent="IPaddr", args=(word,), source=source), None
    parts = word.split("::")
    if not parts[0]:
        return None, f"resource [{word}] has no script name before '::'"
    return ResourceSpec(raw=word, agent=parts[0], args=tuple(parts[1:]), source=source), None


def physical_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line without LF) for each line of ``data``."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    yield from enumerate(lines, start=1)


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


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
        parts = _WS.split(text.strip(" \t\f"), maxsplit=1)
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
    words = split_tokens(rest) if name in LINE_MEDIA else _WS.split(rest)
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


# --------------------------------------------------------------------------- authkeys


def authkeys_permission_error(mode: int, path: str) -> str | None:
    """Heartbeat refuses a keyfile readable by group or others (docs/heartbeat.md#authkeys)."""
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return f"Bad permissions on keyfile [{path}], 600 recommended."
    return None


def parse_authkeys(data: bytes, file: str) -> tuple[AuthKeys | None, list[Diagnostic]]:
    """Parse authkeys text (permissions are checked by the caller)."""
    diags: list[Diagnostic] = []

    def err(line: int, msg: str) -> None:
        diags.append(diagnostic(Source(file, line), msg))

    auth_index: int | None = None
    auth_line = 0
    outbound: int | None = None
    keys: dict[int, AuthKey] = {}
    methods = [m.value for m in AuthMethod]
    for lineno, raw in physical_lines(data):
        if len(raw) + 1 > MAXLINE:
            err(lineno, f"line longer than {MAXLINE} bytes")
            continue
        text = decode(raw).strip(" \t\r\f\v")
        if not text or text.startswith("#"):
            continue
        if text.startswith("a"):
            m = re.fullmatch(r"auth[ \t]+([+-]?\d+)(?:[ \t].*)?", text)
            if m is None:
                err(lineno, f"bad auth line [{text}] (expected: auth N)")
                continue
            auth_index, auth_line = int(m.group(1)), lineno
            if not 0 <= auth_index <= MAX_AUTH_INDEX:
                err(lineno, f"auth index [{auth_index}] out of range (0-{MAX_AUTH_INDEX})")
            continue
        words = text.split()
        if not words:
            continue
        idx = parse_int(words[0])
        if idx is None:
            err(lineno, f"bad authkeys line [{text}] (expected: N METHOD [KEY])")
            continue
        if not 0 <= idx <= MAX_AUTH_INDEX:
            err(lineno, f"auth index [{idx}] out of range (0-{MAX_AUTH_INDEX})")
            continue
        if len(words) < 2:
            err(lineno, f"auth index [{idx}] has no method (crc, md5, sha1, sha256)")
            continue
        method_name = words[1]
        if method_name not in methods:
            err(
                lineno,
                f"unknown authentication method [{method_name}] (crc, md5, sha1, sha256)"
                f"{did_you_mean(method_name, methods)}",
            )
            continue
        method = AuthMethod(method_name)
        key: bytes | None = None
        if method is AuthMethod.CRC:
            if len(words) > 2:
                err(lineno, "Auth method [crc] doesn't use a key")
                continue
        else:
            if len(words) < 3:
                err(lineno, f"Auth method [{method_name}] requires a key")
                continue
            key = words[2].encode("utf-8", errors="surrogateescape")
            if len(words) > 3:
                diags.append(
                    diagnostic(
                        Source(file, lineno),
                        f"key for auth index [{idx}] contains whitespace; only its first word "
                        "is used (as Heartbeat does)",
                        warning=True,
                    )
                )
        if idx in keys:
            diags.append(
                diagnostic(
                    Source(file, lineno),
                    f"auth index [{idx}] listed twice; the last one wins",
                    warning=True,
                )
            )
        keys[idx] = AuthKey(index=idx, method=method, key=key, source=Source(file, lineno))
        if auth_index == idx:
            outbound = idx
    if any(d.severity is Severity.ERROR for d in diags):
        return None, diags
    if auth_index is None:
        err(0, "no `auth N` line: name the key index used to sign outgoing packets")
        return None, diags
    if outbound is None or outbound != auth_index:
        hint = ""
        if auth_index in keys:
            hint = " (the `auth N` line must come before the key line N)"
        err(auth_line, f"Auth Key [{auth_index}] not found in keyfile{hint}")
        return None, diags
    ordered = tuple(sorted(keys.values(), key=lambda k: k.index))
    return AuthKeys(outbound=outbound, keys=ordered, path=os.path.abspath(file)), diags


def read_authkeys(path: str) -> tuple[AuthKeys | None, list[Diagnostic]]:
    """Open, permission-check and parse an authkeys file."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except FileNotFoundError:
        return None, [Diagnostic(path, 0, "authkeys file is missing; Heartbeat needs one")]
    except (OSError, ValueError) as e:
        return None, [
            Diagnostic(
                path, 0, f"cannot read authkeys: {e.strerror if isinstance(e, OSError) else e}"
            )
        ]
    perm = authkeys_permission_error(st.st_mode, path)
    if perm is not None:
        return None, [Diagnostic(path, 0, perm)]
    return parse_authkeys(data, path)


# --------------------------------------------------------------------------- haresources


def logical_lines(data: bytes, file: str) -> tuple[list[tuple[int, str]], list[Diagnostic]]:
    """ResourceManager's normalisation: (first physical line, normalised text) per group."""
    diags: list[Diagnostic] = []
    lines = list(physical_lines(data))
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        start, raw = lines[i]
        i += 1
        if len(raw) + 1 > MAXLINE:
            diags.append(Diagnostic(file, start, f"line longer than {MAXLINE} bytes"))
            continue
        text = decode(raw).rstrip("\r").split("#", 1)[0]
        while text.endswith("\\") and i < len(lines):
            _, nxt = lines[i]
            i += 1
            text = text[:-1] + decode(nxt).rstrip("\r")
        if text.endswith("\\"):
            text = text[:-1]
        words = [w for w in re.split(r"[ \t]+", text) if w]
        if words:
            out.append((start, " ".join(words)))
    return out, diags


def parse_haresources(data: bytes, file: str) -> tuple[list[ResourceGroup], list[Diagnostic]]:
    """Resource groups in file order; node names are lower-cased, not yet checked."""
    logical, diags = logical_lines(data, file)
    groups: list[ResourceGroup] = []
    for line, text in logical:
        words = text.split(" ")
        src = Source(file, line)
        node = words[0].lower()
        if len(words) < 2:
            diags.append(
                Diagnostic(file, line, f"resource group for node [{node}] lists no resources")
            )
            continue
        specs: list[ResourceSpec] = []
        for w in words[1:]:
            spec, err = resource_spec(w, src)
            if spec is None:
                diags.append(Diagnostic(file, line, err or f"bad resource [{w}]"))
            else:
                specs.append(spec)
        if len(specs) == len(words) - 1:
            groups.append(ResourceGroup(node=node, resources=tuple(specs), source=src))
    return groups, diags


# --------------------------------------------------------------------------- loading


def local_node_name(confdir: Path, override: str | None) -> str:
    """--node, nodeinfo's first line or uname -n; lower-cased (docs/heartbeat.md#node-identity)."""
    if override:
        return override.strip().lower()
    try:
        with open(confdir / "nodeinfo", "rb") as f:
            first = decode(f.readline()).strip("\r\n")
    except (OSError, ValueError):
        first = ""
    if first:
        return first.lower()
    return os.uname().nodename.lower()


def _read(path: Path) -> tuple[bytes | None, Diagnostic | None]:
    try:
        return path.read_bytes(), None
    except FileNotFoundError:
        return None, Diagnostic(str(path), 0, "no such file")
    except IsADirectoryError:
        return None, Diagnostic(str(path), 0, "is a directory, not a file")
    except (OSError, ValueError) as e:
        return None, Diagnostic(
            str(path), 0, f"cannot read: {e.strerror if isinstance(e, OSError) else e}"
        )


def load_legacy(hacf: Path, node: str | None) -> tuple[Config | None, str, list[Diagnostic]]:
    """Read a Heartbeat directory; returns (config or None, local node, diagnostics)."""
    confdir = hacf.parent
    diags: list[Diagnostic] = []
    data, problem = _read(hacf)
    local = local_node_name(confdir, node)
    if data is None:
        assert problem is not None
        return None, local, [problem]
    cf = parse_hacf(data, str(hacf))
    diags.extend(cf.diagnostics)

    auth, auth_diags = read_authkeys(str(confdir / "authkeys"))
    diags.extend(auth_diags)

    groups: list[ResourceGroup] = []
    hr_path = confdir / "haresources"
    hr_data, hr_problem = _read(hr_path)
    if hr_data is None:
        if path_exists(hr_path):
            assert hr_problem is not None
            diags.append(hr_problem)
        else:
            diags.append(
                Diagnostic(
                    str(hr_path),
                    0,
                    "no haresources file: membership only, no resources will be managed "
                    "(Heartbeat itself would refuse to start)",
                    severity=Severity.WARNING,
                )
            )
    else:
        groups, hr_diags = parse_haresources(hr_data, str(hr_path))
        diags.extend(hr_diags)

    loc = Locator(file=str(hacf), sources=dict(cf.sources), failed=frozenset(cf.failed))
    config, build_diags = build_config(
        cf,
        auth=auth,
        groups=groups,
        loc=loc,
        local=local,
        origin=str(confdir),
        resource_dir=os.path.abspath(confdir / "resource.d"),
    )
    diags.extend(build_diags)
    return config, local, diags


def build_config(
    cf: HaCf,
    *,
    auth: AuthKeys | None,
    groups: list[ResourceGroup],
    loc: Locator,
    local: str,
    origin: str,
    resource_dir: str | None,
    plugins: Mapping[str, Mapping[str, object]] | None = None,
) -> tuple[Config | None, list[Diagnostic]]:
    """Derived defaults, global validation and the final :class:`Config` (both formats)."""
    diags: list[Diagnostic] = []
    raw = RawTiming(
        keepalive=cf.raw_timing.get("keepalive"),
        deadtime=cf.raw_timing.get("deadtime"),
        warntime=cf.raw_timing.get("warntime"),
        initdead=cf.raw_timing.get("initdead"),
        deadping=cf.raw_timing.get("deadping"),
    )
    timing, tdiags = resolve_timing(raw, loc)
    diags.extend(tdiags)

    # Heartbeat writes derived values back as parameters (docs/heartbeat.md#validation).
    params = dict(cf.parameters)
    for name in ("warntime", "initdead", "deadping"):
        if name not in params:
            params[name] = f"{getattr(timing, name)}ms"
    params.setdefault("udpport", str(cf.udpport))

    auto_failback = cf.auto_failback
    if auto_failback is None:
        auto_failback = AutoFailback.LEGACY
        if loc.toml:
            msg = (
                "cluster.auto_failback not set: Heartbeat's deprecated 'legacy' mode selected; "
                'set auto_failback = "on" or "off"'
            )
        else:
            msg = (
                "Deprecated 'legacy' auto_failback option selected: no auto_failback "
                "directive; add `auto_failback on` or `auto_failback off`"
            )
        diags.append(diagnostic(Source(loc.file, 0), msg, warning=True))
    logging, ldiags = resolve_logging(cf, loc)
    diags.extend(ldiags)

    # Without usable keys there is no Config, but every other check still runs
    # (against a placeholder key set) so that one pass reports every error.
    config = Config(
        nodes=tuple(cf.nodes),
        media=tuple(cf.media),
        auth=auth if auth is not None else AuthKeys(outbound=0, keys=()),
        timing=timing,
        groups=tuple(groups),
        auto_failback=auto_failback,
        udpport=cf.udpport,
        baud=cf.baud,
        cluster=cf.cluster,
        hopfudge=cf.hopfudge,
        logging=logging,
        msgfmt=cf.msgfmt,
        hbgenmethod=cf.hbgenmethod,
        max_rexmit_delay=cf.max_rexmit_delay,
        watchdog=cf.watchdog,
        stonith=tuple(cf.stonith),
        respawn=tuple(cf.respawn),
        ipfail=cf.ipfail or any(r.is_ipfail for r in cf.respawn),
        env=tuple(cf.env),
        parameters=params,
        plugins=dict(plugins or {}),
        origin=origin,
        resource_dir=resource_dir,
    )
    diags.extend(validate_cluster(config, local, loc))
    return (config if auth is not None else None), diags


def resolve_logging(cf: HaCf, loc: Locator) -> tuple[Logging, list[Diagnostic]]:
    """Heartbeat's check_logd_usage: no log destination at all means use_logd."""
    diags: list[Diagnostic] = []
    use_logd = cf.use_logd
    if cf.logfile is None and cf.debugfile is None and cf.logfacility is None:
        if use_logd is False:
            diags.append(
                diagnostic(
                    loc.where("use_logd"),
                    "use_logd: no logfile, debugfile or logfacility given and use_logd is off: "
                    "nowhere to log",
                )
            )
        use_logd = True
    return (
        Logging(
            logfile=cf.logfile,
            debugfile=cf.debugfile,
            logfacility=cf.logfacility,
            debug=cf.debug,
            syslogmsgfmt=cf.syslogmsgfmt,
            use_logd=bool(use_logd),
        ),
        diags,
    )


__all__ = [
    "ALL_DIRECTIVES",
    "HaCf",
    "load_legacy",
    "parse_authkeys",
    "parse_hacf",
    "parse_haresources",
    "read_authkeys",
    "resource_spec",
]
