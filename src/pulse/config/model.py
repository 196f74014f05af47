"""The configuration model: one set of frozen dataclasses for every input format.

``legacy.py`` (ha.cf + haresources + authkeys) and ``toml.py`` both produce a
:class:`Config`; ``convert.py`` renders a :class:`Config` back to TOML. Nothing in
here reads files or the machine: host facts (does eth0 exist?) are checked in
``checks.py`` so that a config can be reviewed anywhere.

Times are integers in milliseconds, as Heartbeat keeps them internally.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_UDPPORT = 694
DEFAULT_BAUD = 19200
VALID_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a value was written: used for ``FILE:LINE: message`` diagnostics."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class AutoFailback(enum.StrEnum):
    ON = "on"
    OFF = "off"
    LEGACY = "legacy"


class AuthMethod(enum.StrEnum):
    CRC = "crc"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"  # pulse's own; a Heartbeat peer does not know it


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """Heartbeat's timers, all in milliseconds, with derived defaults already applied."""

    keepalive: int = 1000
    deadtime: int = 30000
    warntime: int = 15000
    initdead: int = 30000
    deadping: int = 30000


def derive_initdead(deadtime: int) -> int:
    """Heartbeat's default initdead for a given deadtime (docs/heartbeat.md#hacf-directives)."""
    if deadtime > 10000:
        return deadtime
    if deadtime < 6000:
        return 12000
    return 2 * deadtime


# --------------------------------------------------------------------------- media


@dataclass(frozen=True, slots=True, kw_only=True)
class BcastMedium:
    interface: str
    port: int = DEFAULT_UDPPORT
    source: Source | None = None
    kind: str = "bcast"

    @property
    def name(self) -> str:
        return self.interface


@dataclass(frozen=True, slots=True, kw_only=True)
class McastMedium:
    interface: str
    group: str
    port: int
    ttl: int = 1
    loop: bool = False
    source: Source | None = None
    kind: str = "mcast"

    @property
    def name(self) -> str:
        return self.interface


@dataclass(frozen=True, slots=True, kw_only=True)
class UcastMedium:
    interface: str
    peer: str
    port: int = DEFAULT_UDPPORT
    source: Source | None = None
    kind: str = "ucast"

    @property
    def name(self) -> str:
        return self.interface


@dataclass(frozen=True, slots=True, kw_only=True)
class SerialMedium:
    device: str
    baud: int = DEFAULT_BAUD
    source: Source | None = None
    kind: str = "serial"

    @property
    def name(self) -> str:
        return self.device


@dataclass(frozen=True, slots=True, kw_only=True)
class PingMedium:
    """``ping HOST`` / ``ping6 HOST``: HOST becomes a ping pseudo-node."""

    host: str
    ipv6: bool = False
    source: Source | None = None
    kind: str = "ping"

    @property
    def name(self) -> str:
        return self.host


@dataclass(frozen=True, slots=True, kw_only=True)
class PingGroupMedium:
    """``ping_group NAME HOST…``: one pseudo-node up while any host answers."""

    group: str
    hosts: tuple[str, ...]
    source: Source | None = None
    kind: str = "ping_group"

    @property
    def name(self) -> str:
        return self.group


Medium = BcastMedium | McastMedium | UcastMedium | SerialMedium | PingMedium | PingGroupMedium


# --------------------------------------------------------------------------- auth


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthKey:
    index: int
    method: AuthMethod
    key: bytes | None  # None for crc
    source: Source | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthKeys:
    """Parsed authkeys: every listed key is accepted, ``outbound`` is used to sign."""

    outbound: int
    keys: tuple[AuthKey, ...]
    path: str | None = None

    def get(self, index: int) -> AuthKey | None:
        for k in self.keys:
            if k.index == index:
                return k
        return None

    @property
    def outbound_key(self) -> AuthKey:
        key = self.get(self.outbound)
        assert key is not None, "validated at load time"
        return key


# --------------------------------------------------------------------------- resources


class OnFail(enum.StrEnum):
    """What a failed monitor makes this node do (docs/resources.md#recovery)."""

    RESTART = "restart"  # stop the resource and those after it, start them again here
    FAILOVER = "failover"  # move the group to the next node at once
    IGNORE = "ignore"  # record and report only


DEFAULT_MONITOR_TIMEOUT = 20000  # ms: Heartbeat's status timeout
DEFAULT_MIGRATION_THRESHOLD = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorOptions:
    """``monitor = { interval, timeout }``: how often a resource is checked and for how long
    at most (ms). Both are above 0 (the loader refuses anything else)."""

    interval: int
    timeout: int = DEFAULT_MONITOR_TIMEOUT


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceSpec:
    """One haresources word, resolved as ResourceManager resolves it.

    ``raw`` is the word as written (``IPaddr::10.0.0.5/24/eth0``); ``agent`` the script
    or agent name (``IPaddr``; a bare IP becomes ``IPaddr``); ``args`` the ``::``
    separated arguments, passed as argv before the operation.
    """

    raw: str
    agent: str
    args: tuple[str, ...] = ()
    source: Source | None = None
    # TOML only (`{ name = "apache2", monitor = {...}, on_fail = "..." }`): this
    # resource's own monitor and on_fail, overriding its group's; None: the group's.
    monitor: MonitorOptions | None = None
    on_fail: OnFail | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceGroup:
    """One haresources line: a preferred node and resources started left to right.

    The monitoring keys come from TOML only; a legacy ha.cf setup keeps Heartbeat's
    behaviour (``monitor`` None: nothing is watched). ``failure_timeout`` is in ms,
    None for "failures are never forgotten by themselves".
    """

    node: str
    resources: tuple[ResourceSpec, ...]
    source: Source | None = None
    monitor: MonitorOptions | None = None
    on_fail: OnFail = OnFail.RESTART
    migration_threshold: int = DEFAULT_MIGRATION_THRESHOLD
    failure_timeout: int | None = None

    def monitor_of(self, spec: ResourceSpec) -> MonitorOptions | None:
        """The monitor a resource of this group runs: its own, else the group's."""
        return spec.monitor if spec.monitor is not None else self.monitor

    def on_fail_of(self, spec: ResourceSpec) -> OnFail:
        """What a failure of this resource does: its own on_fail, else the group's."""
        return spec.on_fail if spec.on_fail is not None else self.on_fail

    @property
    def monitored(self) -> bool:
        return any(self.monitor_of(spec) is not None for spec in self.resources)

    @property
    def key(self) -> str:
        """The first resource names the group in messages and commands."""
        return self.resources[0].raw


# --------------------------------------------------------------------------- misc sections


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceOptions:
    """How long resource operations may take (ms), how often a failing stop is retried
    (Heartbeat's HA_STOPRETRYMAX; a negative number retries forever), and how a new
    floating IP is announced (None: Heartbeat's defaults per agent, IPaddr 10 x 500 ms,
    IPaddr2 5 x 200 ms)."""

    start: int = 60000
    stop: int = 60000
    status: int = 20000
    stop_retries: int = 10
    arp_count: int | None = None
    arp_interval: int | None = None  # ms between two announcements


#: What happened, as told to event listeners and notify scripts (pulse.plugin.api.ClusterEvent).
CLUSTER_EVENT_KINDS = (
    "node-dead",
    "node-up",
    "acquired",
    "released",
    "acquire-failed",
    "release-failed",
    "fenced",
    "fence-failed",
    "shutdown",
    "resource-failed",  # a monitor found a resource of a group held here failed or gone
    "resource-recovered",  # ... and later running again
    # Published by pulse-etcd's lease gate (contrib/pulse-etcd) through GroupControl.
    "etcd-lost",
    "etcd-regained",
)


NOTIFY_TIMEOUT_MS = 10000


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyScript:
    """``[[notify]]``: a program run (argv, never a shell) for each matching event."""

    command: tuple[str, ...]
    events: tuple[str, ...] = CLUSTER_EVENT_KINDS
    timeout: int = NOTIFY_TIMEOUT_MS  # ms
    source: Source | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsOptions:
    """``[metrics] listen = "HOST:PORT"``: where the OpenMetrics endpoint listens."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Logging:
    logfile: str | None = None
    debugfile: str | None = None
    logfacility: str | None = None  # None or "none" means no syslog
    debug: int = 0
    syslogmsgfmt: bool = True
    use_logd: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StonithDirective:
    """``stonith TYPE FILE`` or ``stonith_host HOST TYPE PARAMS``, kept as written.

    Interpreted by the STONITH plugin; the core only carries it.
    """

    type: str
    params: str
    host: str | None = None  # stonith_host's HOST ("*" = any); None for `stonith`
    params_file: str | None = None  # `stonith`'s FILE
    source: Source | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RespawnDirective:
    """``respawn USER /PATH ARGS...`` or ``failfast ...``: a program pulse keeps running."""

    user: str
    command: tuple[str, ...]  # the line split on blanks: argv, never a shell command
    failfast: bool = False
    source: Source | None = None

    @property
    def is_ipfail(self) -> bool:
        """Heartbeat's ipfail client, whose policy pulse runs itself (no process)."""
        return self.program.rsplit("/", 1)[-1] == "ipfail"

    @property
    def program(self) -> str:
        return self.command[0] if self.command else ""


# Heartbeat's own API clients: they talk to Heartbeat over its client API, which pulse
# does not have, so a `respawn` of one of them cannot work (ipfail's policy is built in).
BUILTIN_CLIENTS = frozenset({"ipfail"})
HEARTBEAT_API_CLIENTS = frozenset(
    {"ccm", "dopd", "attrd", "crmd", "cib", "mgmtd", "stonithd", "lrmd", "pingd"}
)


def heartbeat_client(directive: RespawnDirective) -> str | None:
    """The Heartbeat API client a respawn line names (``ipfail``, ``ccm``...), else None."""
    name = directive.program.rsplit("/", 1)[-1]
    return name if name in BUILTIN_CLIENTS | HEARTBEAT_API_CLIENTS else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything pulse needs to run one node."""

    nodes: tuple[str, ...]  # normal nodes, lower-cased, in ha.cf order
    media: tuple[Medium, ...]
    auth: AuthKeys
    timing: Timing = field(default_factory=Timing)
    groups: tuple[ResourceGroup, ...] = ()
    auto_failback: AutoFailback = AutoFailback.LEGACY
    udpport: int = DEFAULT_UDPPORT
    baud: int = DEFAULT_BAUD
    cluster: str = "linux-ha"
    hopfudge: int = 1
    logging: Logging = field(default_factory=Logging)
    msgfmt: str = "classic"  # "classic" or "netstring": the wire form pulse sends
    hbgenmethod: str = "file"
    max_rexmit_delay: int = 250  # ms
    watchdog: str | None = None
    stonith: tuple[StonithDirective, ...] = ()
    respawn: tuple[RespawnDirective, ...] = ()
    # Heartbeat's ipfail policy, built in (`respawn … ipfail` or TOML [cluster] ipfail).
    ipfail: bool = False
    # `env NAME=value` lines in order: exported as HA_NAME=value to respawned programs
    # and resource scripts (Heartbeat sets them in its own environment).
    env: tuple[tuple[str, str], ...] = ()
    # Every directive as written (last value wins), as `cl_status hbparameter` shows it
    # and as exported to scripts as HA_<name>.
    parameters: Mapping[str, str] = field(default_factory=dict)
    # Plugin tables from TOML ([plugins.NAME]) passed through untouched.
    plugins: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    # Plugins not to load ([plugins] disable = ["name", ...]).
    disabled_plugins: tuple[str, ...] = ()
    # Resource operation timeouts ([resources] in TOML; Heartbeat's fixed values otherwise).
    resource_options: ResourceOptions = field(default_factory=ResourceOptions)
    # The metrics endpoint ([metrics] listen); None: not served (pulsectl metrics still is).
    metrics: MetricsOptions | None = None
    # Programs run on cluster events ([[notify]]).
    notify: tuple[NotifyScript, ...] = ()
    # A group whose members may read the control socket ([control] group).
    control_group: str | None = None
    # Where the config came from: the ha.d directory or the TOML file.
    origin: str = ""
    # Where each Heartbeat-compatible resource script directory is (resource.d).
    resource_dir: str | None = None
    # The line of every TOML table header and `key =` line, by key path
    # (("plugins", "mailto", "to") or ("plugins", "stonith", "devices", 0)), as the
    # TOML loader recorded it (pulse.config.toml.key_lines); empty for ha.cf. Plugins
    # read it through pulse.plugin.settings. Not part of a config's identity.
    key_lines: Mapping[tuple[str | int, ...], int] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def ping_nodes(self) -> tuple[str, ...]:
        names: list[str] = []
        for m in self.media:
            if isinstance(m, PingMedium):
                names.append(m.host)
            elif isinstance(m, PingGroupMedium):
                names.append(m.group)
        return tuple(names)

    @property
    def links(self) -> tuple[BcastMedium | McastMedium | UcastMedium | SerialMedium, ...]:
        """Media that carry heartbeats between nodes (not ping pseudo-nodes)."""
        return tuple(
            m
            for m in self.media
            if isinstance(m, BcastMedium | McastMedium | UcastMedium | SerialMedium)
        )

    def groups_of(self, node: str) -> tuple[ResourceGroup, ...]:
        return tuple(g for g in self.groups if g.node == node)
