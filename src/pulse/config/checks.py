"""Validation shared by every config format, and host-fact checks.

* :func:`resolve_timing` applies Heartbeat's derived timer defaults and its
  timer invariants (docs/heartbeat.md#hacf-directives, #validation).
* :func:`validate_cluster` checks the cluster-wide rules: nodes, media, the local
  node, resource groups.
* :func:`host_facts` checks facts about *this* machine (interfaces, serial
  devices, resource scripts, ...). They are warnings for ``pulse check`` on
  another machine and errors for ``pulse run`` (``strict_host=True``).

The format-specific parsers (``legacy.py``, ``toml.py``) tell these functions
where each setting was written through a :class:`Locator`, so that diagnostics
carry ``FILE:LINE`` and the right name (``deadtime`` or ``timing.deadtime``).
"""

from __future__ import annotations

import grp
import ipaddress
import os
import re
import stat
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pulse.config.durations import format_ms
from pulse.config.model import (
    BcastMedium,
    Config,
    McastMedium,
    ResourceSpec,
    SerialMedium,
    Source,
    Timing,
    UcastMedium,
    derive_initdead,
    heartbeat_client,
)
from pulse.errors import Diagnostic, Severity

MAX_NODES = 100  # incl. ping nodes (heartbeat.h MAXNODE)
MAX_NODENAME = 100
MAX_MEDIA = 64

# Agents pulse provides itself (built-in or through a bundled plugin).
BUILTIN_AGENTS = frozenset({"IPaddr", "IPaddr2"})
# Resource agents of the plugins shipped in contrib/: a word naming one needs that
# plugin installed and enabled, unless a script of that name stands in resource.d
# (Heartbeat's own MailTo is a resource.d script).
PLUGIN_AGENTS = {
    "MailTo": "pulse-mailto",
    "MySQLReplica": "pulse-mysql",
    "AsteriskBindaddr": "pulse-asterisk",
}
IP_AGENT_NAMES = frozenset({"IPaddr", "IPaddr2", "IPv6addr"})
_LOOKS_LIKE_IPV4 = re.compile(r"\d{1,4}(?:\.\d{1,4}){3}(?:/.*)?")
INIT_DIR = "/etc/init.d"
DEFAULT_OCF_ROOT = "/usr/lib/ocf"
SYSTEMD_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system",
                     "/usr/lib/systemd/system")  # fmt: skip

# ResourceManager's implicit-IP glob [0-9]*.[0-9]*.[0-9]*.[0-9]* as a regex.
IMPLICIT_IP = re.compile(r"[0-9].*\.[0-9].*\.[0-9].*\.[0-9].*", re.DOTALL)

_TOML_LABELS = {
    "keepalive": "timing.keepalive",
    "deadtime": "timing.deadtime",
    "warntime": "timing.warntime",
    "initdead": "timing.initdead",
    "deadping": "timing.deadping",
    "nodes": "cluster.nodes",
    "media": "links",
}
_LEGACY_LABELS = {"nodes": "node", "media": "media"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Locator:
    """Where the settings of one config were written, and how to name them."""

    file: str
    sources: Mapping[str, Source] = field(default_factory=dict)
    toml: bool = False
    # Settings already reported as invalid: checks that depend on them are skipped.
    failed: frozenset[str] = frozenset()

    def where(self, *keys: str) -> Source:
        """The source of the first of ``keys`` that was written, else the file itself."""
        for k in keys:
            src = self.sources.get(k)
            if src is not None:
                return src
        return Source(self.file, 0)

    def label(self, key: str) -> str:
        if self.toml:
            return _TOML_LABELS.get(key, key)
        return _LEGACY_LABELS.get(key, key)


def diagnostic(
    src: Source | None, message: str, *, file: str = "", warning: bool = False
) -> Diagnostic:
    """A Diagnostic at ``src`` (or at ``file`` when the source is unknown)."""
    sev = Severity.WARNING if warning else Severity.ERROR
    if src is None:
        return Diagnostic(file, 0, message, sev)
    return Diagnostic(src.file, src.line, message, sev)


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True, slots=True, kw_only=True)
class RawTiming:
    """Timer values as written (ms), ``None`` where absent."""

    keepalive: int | None = None
    deadtime: int | None = None
    warntime: int | None = None
    initdead: int | None = None
    deadping: int | None = None


def resolve_timing(raw: RawTiming, loc: Locator) -> tuple[Timing, list[Diagnostic]]:
    """Apply Heartbeat's derived defaults and invariants (init_config)."""
    out: list[Diagnostic] = []
    keepalive = raw.keepalive if raw.keepalive is not None else 1000
    deadtime = raw.deadtime if raw.deadtime is not None else 30000
    warntime = raw.warntime if raw.warntime is not None else deadtime // 2
    initdead = raw.initdead if raw.initdead is not None else derive_initdead(deadtime)
    deadping = raw.deadping if raw.deadping is not None else deadtime

    if deadtime <= 2 * keepalive:
        out.append(
            diagnostic(
                loc.where("deadtime", "keepalive"),
                f"{loc.label('deadtime')}: must be more than twice keepalive "
                f"({format_ms(2 * keepalive)}); raise deadtime or lower keepalive",
            )
        )
    if initdead < deadtime:
        out.append(
            diagnostic(
                loc.where("initdead", "deadtime"),
                f"{loc.label('initdead')}: must be at least deadtime ({format_ms(deadtime)}); "
                "raise initdead",
            )
        )
    elif initdead < 10000:
        out.append(
            diagnostic(
                loc.where("initdead", "deadtime"),
                f"{loc.label('initdead')}: {format_ms(initdead)} is very low; "
                "Heartbeat recommends at least 10s (networks may be slow to come up)",
                warning=True,
            )
        )
    if raw.deadping is not None and deadping <= 2 * keepalive:
        out.append(
            diagnostic(
                loc.where("deadping"),
                f"{loc.label('deadping')}: must be more than twice keepalive "
                f"({format_ms(2 * keepalive)})",
            )
        )
    if warntime <= 0:
        out.append(
            diagnostic(loc.where("warntime"), f"{loc.label('warntime')}: must be more than 0")
        )
    elif warntime >= deadtime:
        out.append(
            diagnostic(
                loc.where("warntime", "deadtime"),
                f"{loc.label('warntime')}: {format_ms(warntime)} is not below deadtime "
                f"({format_ms(deadtime)}); late-heartbeat warnings will never be logged",
                warning=True,
            )
        )
    timing = Timing(
        keepalive=keepalive,
        deadtime=deadtime,
        warntime=warntime,
        initdead=initdead,
        deadping=deadping,
    )
    return timing, out


# --------------------------------------------------------------------------- cluster


def validate_cluster(cfg: Config, node: str, loc: Locator) -> list[Diagnostic]:
    """Cluster-wide rules shared by legacy and TOML (docs/heartbeat.md#validation)."""
    out: list[Diagnostic] = []
    nodes_src = loc.where("nodes")
    nodes_ok = "nodes" not in loc.failed
    if not cfg.nodes and not nodes_ok:
        pass
    elif not cfg.nodes:
        out.append(
            diagnostic(
                nodes_src,
                f"{loc.label('nodes')}: no cluster nodes declared"
                + ("" if loc.toml else "; add a line `node NAME` for every cluster node"),
            )
        )
    elif node not in cfg.nodes:
        hint = "--node NAME" + ("" if loc.toml else " or the first line of nodeinfo")
        out.append(
            diagnostic(
                nodes_src,
                f"Current node [{node}] not in configuration! Configured nodes: "
                f"{', '.join(cfg.nodes)}; set this machine's name with {hint}",
            )
        )
    if len(cfg.nodes) + len(cfg.ping_nodes) > MAX_NODES:
        out.append(
            diagnostic(nodes_src, f"too many nodes: at most {MAX_NODES} including ping nodes")
        )
    for name in cfg.nodes:
        if len(name) > MAX_NODENAME:
            out.append(
                diagnostic(nodes_src, f"node name [{name[:20]}...] longer than {MAX_NODENAME}")
            )
    seen_nodes: set[str] = set()
    for name in cfg.nodes:
        if name in seen_nodes:
            out.append(
                diagnostic(
                    nodes_src,
                    f"node [{name}] is declared more than once (Heartbeat does not notice; "
                    "remove the duplicate)",
                    warning=True,
                )
            )
        seen_nodes.add(name)
    if not cfg.media and "media" in loc.failed:
        pass
    elif not cfg.media:
        out.append(
            diagnostic(
                loc.where("media"),
                f"{loc.label('media')}: no heartbeat media configured; "
                "add at least one of bcast, mcast, ucast or serial",
            )
        )
    elif not cfg.links:
        out.append(
            diagnostic(
                loc.where("media"),
                "only ping media configured: nodes cannot hear each other",
                warning=True,
            )
        )
    if len(cfg.media) > MAX_MEDIA:
        out.append(diagnostic(loc.where("media"), f"too many media: at most {MAX_MEDIA}"))
    if cfg.ipfail and not cfg.ping_nodes:
        ipfail_src = next((r.source for r in cfg.respawn if r.is_ipfail), None)
        out.append(
            diagnostic(
                ipfail_src or loc.where("media"),
                "ipfail without ping nodes does nothing; add `ping ROUTER` (or ping_group) "
                "for the router(s) the nodes must reach",
                warning=True,
            )
        )

    out.extend(_floating_ip_arguments(cfg, loc))
    keys: dict[str, Source | None] = {}
    for i, group in enumerate(cfg.groups):
        src = group.source
        if group.node not in cfg.nodes and nodes_ok:
            declared = ", ".join(cfg.nodes) or "none"
            if loc.toml:
                msg = f"groups[{i}].node: bad node name [{group.node}] (declared nodes: {declared})"
            else:
                msg = f"Bad nodename in haresources [{group.node}] (declared nodes: {declared})"
            out.append(diagnostic(src, msg, file=loc.file))
        if not group.resources:
            continue
        key = group.key
        if key in keys:
            first = keys[key]
            where = f" (first used at {first})" if first is not None else ""
            what = f"groups[{i}]" if loc.toml else "haresources"
            out.append(
                diagnostic(
                    src,
                    f"{what}: duplicate resource group key [{key}]{where}; the first resource "
                    "of every group must be unique",
                    file=loc.file,
                )
            )
        else:
            keys[key] = src
    out.extend(_respawn_of_api_clients(cfg, loc))
    return out


def _floating_ip_arguments(cfg: Config, loc: Locator) -> list[Diagnostic]:
    """Every floating address is parsed now, not at takeover (``198.51.100.300``, ``/33``)."""
    # The parser belongs to the floating-IP agent; it is pure (no netlink, no I/O).
    from pulse.resources.ipaddr import ip_argument_text, parse_ip_argument

    out: list[Diagnostic] = []
    for i, group in enumerate(cfg.groups):
        for j, res in enumerate(group.resources):
            if res.agent not in IP_AGENT_NAMES and not _LOOKS_LIKE_IPV4.fullmatch(res.raw):
                continue
            what = f"groups[{i}].resources[{j}] [{res.raw}]" if loc.toml else f"[{res.raw}]"
            try:
                arg = parse_ip_argument(ip_argument_text(res))
            except ValueError as exc:
                out.append(
                    diagnostic(
                        res.source or group.source,
                        f"resource {what}: {exc}; write IP[/MASK[/IF[/BROADCAST]]], "
                        "e.g. 198.51.100.10/24/eth0",
                        file=loc.file,
                    )
                )
                continue
            if arg.broadcast is not None and arg.prefixlen is not None:
                net = ipaddress.ip_network(f"{arg.address}/{arg.prefixlen}", strict=False)
                if arg.broadcast not in net:
                    out.append(
                        diagnostic(
                            res.source or group.source,
                            f"resource {what}: broadcast {arg.broadcast} is outside "
                            f"{net}; use {net.broadcast_address} or leave it out",
                            file=loc.file,
                            warning=True,
                        )
                    )
    return out


def _respawn_of_api_clients(cfg: Config, loc: Locator) -> list[Diagnostic]:
    """A respawn of Heartbeat's own API clients cannot work: pulse has no client API.

    ``ipfail`` is not reported: pulse implements its policy itself and skips it quietly.
    """
    out = []
    for i, r in enumerate(cfg.respawn):
        client = heartbeat_client(r)
        if client is None or client == "ipfail":
            continue
        what = f"respawn[{i}]" if loc.toml else ("failfast" if r.failfast else "respawn")
        out.append(
            diagnostic(
                r.source,
                f"{what}: [{r.program}] is Heartbeat's {client}, which needs Heartbeat's "
                "client API; pulse does not have it, so it will not be started",
                file=loc.file,
                warning=True,
            )
        )
    return out


# --------------------------------------------------------------------------- host facts


def resolve_agent(spec: ResourceSpec, resource_dir: str | None) -> str | None:
    """The file that implements ``spec`` on this machine, "" for a built-in, None if missing."""
    agent = spec.agent
    if agent in BUILTIN_AGENTS:
        return ""
    if agent.startswith("ocf:"):
        parts = agent.split(":")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            return None
        root = os.environ.get("OCF_ROOT", DEFAULT_OCF_ROOT)
        path = Path(root, "resource.d", parts[1], parts[2])
        return str(path) if _is_executable_file(path) else None
    if agent.startswith("systemd:"):
        unit = agent.removeprefix("systemd:")
        names = [unit] if "." in unit else [unit, unit + ".service"]
        for d in SYSTEMD_UNIT_DIRS:
            for n in names:
                if path_exists(Path(d, n)):
                    return str(Path(d, n))
        return None
    dirs = [resource_dir] if resource_dir else []
    if agent.startswith("lsb:"):  # only /etc/init.d, as the LSB agent looks
        agent, dirs = agent.removeprefix("lsb:"), []
    if "/" in agent or agent in ("", ".", ".."):
        return None
    dirs.append(INIT_DIR)
    for d in dirs:
        path = Path(d, agent)
        if _is_executable_file(path):
            return str(path)
    return None


def _ip_interface_fact(
    res: ResourceSpec, fallback: Source | None, add: Callable[[Source | None, str], None]
) -> None:
    """A floating address that names its interface needs that interface here."""
    from pulse.resources.ipaddr import ip_argument_text, parse_ip_argument  # pure parser

    try:
        arg = parse_ip_argument(ip_argument_text(res))
    except ValueError:
        return  # validate_cluster reported it
    if arg.interface is not None and not _interface_exists(arg.interface):
        add(
            res.source or fallback,
            f"resource [{res.raw}]: interface [{arg.interface}] does not exist on this machine",
        )


def _is_executable_file(path: Path) -> bool:
    try:
        st = path.stat()
        return stat.S_ISREG(st.st_mode) and os.access(path, os.X_OK)
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return False


def path_exists(path: Path | str) -> bool:
    """Path.exists() that treats an impossible name (NUL byte) as absent."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def _readable(path: str) -> bool:
    try:
        return os.access(path, os.R_OK)
    except ValueError:
        return False


def _interface_exists(name: str) -> bool:
    # Heartbeat accepts alias labels like eth0:1 for the base interface.
    base = name.split(":", 1)[0]
    return bool(base) and "/" not in base and path_exists(Path("/sys/class/net", base))


def host_facts(
    cfg: Config, *, strict: bool, provided_agents: Collection[str] | None = ()
) -> list[Diagnostic]:
    """Facts about this machine; warnings unless ``strict`` (then errors).

    ``provided_agents``: resource agent names that plugins provide (not script files);
    None when the plugins were not asked (then a plugin's agent name is not checked).
    """
    out: list[Diagnostic] = []
    warn = not strict

    def add(src: Source | None, msg: str) -> None:
        out.append(diagnostic(src, msg, file=cfg.origin, warning=warn))

    for m in cfg.media:
        if isinstance(m, BcastMedium | McastMedium | UcastMedium):
            if not _interface_exists(m.interface):
                add(m.source, f"{m.kind}: interface [{m.interface}] does not exist on this machine")
        elif isinstance(m, SerialMedium):
            try:
                st = os.stat(m.device)
            except (OSError, ValueError):
                add(m.source, f"serial: device [{m.device}] does not exist on this machine")
            else:
                if not stat.S_ISCHR(st.st_mode):
                    add(m.source, f"serial: [{m.device}] is not a character device")

    for group in cfg.groups:
        for res in group.resources:
            if provided_agents is None and res.agent in PLUGIN_AGENTS:
                continue  # whether its plugin is installed was not asked
            if provided_agents is not None and res.agent in provided_agents:
                continue
            found = resolve_agent(res, cfg.resource_dir)
            if found is None and res.agent in PLUGIN_AGENTS:
                # Not a fact of this machine alone: the word cannot work anywhere
                # without the plugin, so this is an error in check too.
                out.append(
                    diagnostic(
                        res.source or group.source,
                        f"resource [{res.raw}]: the {res.agent} agent comes with the "
                        f"{PLUGIN_AGENTS[res.agent]} plugin, which is not installed or is "
                        f"disabled (pip install {PLUGIN_AGENTS[res.agent]}; check "
                        "[plugins] disable and PULSE_DISABLE_PLUGINS)",
                        file=cfg.origin,
                    )
                )
            elif res.agent in IP_AGENT_NAMES:
                _ip_interface_fact(res, group.source, add)
            elif found is None:
                where = cfg.resource_dir or "resource.d"
                add(
                    res.source or group.source,
                    f"cannot locate resource script [{res.agent}] for resource [{res.raw}] "
                    f"(looked in {where} and {INIT_DIR})",
                )

    for st_dir in cfg.stonith:
        if st_dir.params_file is not None and not _readable(st_dir.params_file):
            add(st_dir.source, f"stonith: cannot read parameter file [{st_dir.params_file}]")

    for r in cfg.respawn:
        prog = r.program
        if heartbeat_client(r) is not None:
            continue  # never started (validate_cluster says so)
        if not _is_executable_file(Path(prog)):
            what = "failfast" if r.failfast else "respawn"
            add(r.source, f"{what}: [{prog}] is not an executable file")

    if cfg.control_group is not None:
        try:
            grp.getgrnam(cfg.control_group)
        except KeyError:
            add(None, f"control.group: no group [{cfg.control_group}] on this machine")

    for script in cfg.notify:
        if not _is_executable_file(Path(script.command[0])):
            add(script.source, f"notify: [{script.command[0]}] is not an executable file")

    if cfg.watchdog is not None and not path_exists(cfg.watchdog):
        add(None, f"watchdog: device [{cfg.watchdog}] does not exist on this machine")
    return out


def sorted_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Stable order for reports: by file, then line, keeping insertion order within a line."""
    indexed = list(enumerate(diags))
    indexed.sort(key=lambda p: (p[1].file, p[1].line, p[0]))
    return [d for _, d in indexed]
