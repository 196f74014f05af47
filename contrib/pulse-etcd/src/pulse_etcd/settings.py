"""``[plugins.etcd]``: where etcd is, the lease timing, and the timing argument's checks.

Read with pulse's public :class:`pulse.plugin.settings.SettingsReader`; nothing here
touches the network. :func:`timing_problems` is the timing argument of
docs/plugins/etcd.md turned into ``pulse check`` diagnostics.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from pulse.config.model import Config
from pulse.errors import Diagnostic
from pulse.plugin.settings import SettingsReader

NAME = "etcd"
LOST_POLICIES = ("stop", "keep")

# Measured against Debian's etcd 3.4.23 (issue 13): renewals fail for up to 2.1 s when
# the leader is killed and up to 4.2 s when a partitioned member comes back.
WORST_ELECTION = 4.2
# An expired lease's keys go in etcd's 500 ms revocation loop.
EXPIRY_LOOP = 0.5

KEYS = (
    "endpoints",
    "ttl",
    "renew_interval",
    "safety_margin",
    "request_timeout",
    "acquire_wait",
    "prefix",
    "cluster",
    "on_etcd_lost",
    "names",
    "ca_file",
    "cert_file",
    "key_file",
    "username",
    "password",
    "password_file",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    endpoints: tuple[str, ...] = ()
    ttl: int = 8  # whole seconds (etcd refuses a fractional TTL)
    renew_interval: float = 1.0
    safety_margin: float = 2.0
    request_timeout: float = 0.5
    acquire_wait: float | None = None  # None: ttl + 1.5 s
    prefix: str = "/pulse"
    cluster: str = "linux-ha"
    on_etcd_lost: str = "stop"
    names: dict[str, str] = field(default_factory=dict)  # group key -> key name
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None
    password_file: str | None = None

    @property
    def demote_after(self) -> float:
        """Seconds without a renewal after which a holder gives its groups up."""
        return self.ttl - self.safety_margin

    @property
    def wait(self) -> float:
        """How long an acquisition waits for another node's key to go."""
        return self.acquire_wait if self.acquire_wait is not None else self.ttl + 1.5

    def key_name(self, group: str) -> str:
        """The name a group's key has: its ``names`` entry, else the group key escaped
        so it has no slash (``198.51.100.20/24/eth0`` -> ``198.51.100.20%2F24%2Feth0``)."""
        return self.names.get(group) or urllib.parse.quote(group, safe="")

    def key(self, group: str) -> str:
        return f"{self.prefix}/{self.cluster}/groups/{self.key_name(group)}"


def read_settings(config: Config, reader: SettingsReader) -> tuple[Settings, list[Diagnostic]]:
    """The settings of ``[plugins.etcd]`` and what is wrong with them (and their timing)."""
    d = Settings()
    endpoints = reader.strings(
        "endpoints", example='["http://203.0.113.11:2379", "http://203.0.113.12:2379"]'
    )
    if reader.table:
        reader.require("endpoints", example='["http://203.0.113.11:2379"]')
    for index, url in enumerate(endpoints):
        parts = urllib.parse.urlsplit(url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path
            not in (
                "",
                "/",
            )
        ):
            reader.error(
                "endpoints",
                f"element {index + 1}: {url!r} is not an etcd URL "
                "(expected http://HOST:PORT or https://HOST:PORT)",
            )
    ttl_value = reader.table.get("ttl")
    if isinstance(ttl_value, float):
        reader.error(
            "ttl",
            f"expected whole seconds, got {ttl_value!r}: etcd grants leases in whole seconds "
            "(a fractional TTL is refused)",
        )
        ttl = d.ttl
    else:
        ttl = reader.integer("ttl", d.ttl, low=2, high=3600)
    prefix = reader.text("prefix", d.prefix, example='"/pulse"')
    if not prefix.startswith("/") or prefix.endswith("/"):
        reader.error("prefix", f'expected a key prefix such as "/pulse", got {prefix!r}')
        prefix = d.prefix
    cluster = reader.text("cluster", config.cluster or d.cluster, example='"web-cluster"')
    if "/" in cluster:
        reader.error("cluster", f"a key component cannot contain '/': {cluster!r}")
    names_reader = reader.table_at("names")
    names: dict[str, str] = {}
    for group, name in names_reader.table.items():
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            names_reader.error(group, f"expected a key name without '/', got {name!r}")
        else:
            names[group] = name
    known_groups = {g.key for g in config.groups}
    for group in names:
        if known_groups and group not in known_groups:
            names_reader.warn(group, f"no group is called {group!r}")
    seen: dict[str, str] = {}
    for group in sorted(known_groups | set(names)):
        key = names.get(group) or urllib.parse.quote(group, safe="")
        if key in seen:
            where = names_reader if group in names else reader
            where.error(
                group if group in names else "names",
                f"groups {seen[key]!r} and {group!r} would share the etcd key {key!r}",
            )
        seen[key] = group
    password = reader.optional_text("password", example='"secret"')
    password_file = reader.path("password_file", None)
    settings = Settings(
        endpoints=endpoints,
        ttl=ttl,
        renew_interval=reader.duration("renew_interval", d.renew_interval),
        safety_margin=reader.duration("safety_margin", d.safety_margin),
        request_timeout=reader.duration("request_timeout", d.request_timeout),
        acquire_wait=reader.duration("acquire_wait", None),
        prefix=prefix,
        cluster=cluster,
        on_etcd_lost=reader.choice("on_etcd_lost", LOST_POLICIES, d.on_etcd_lost),
        names=names,
        ca_file=reader.path("ca_file", None),
        cert_file=reader.path("cert_file", None),
        key_file=reader.path("key_file", None),
        username=reader.optional_text("username", example='"pulse"'),
        password=password,
        password_file=password_file,
    )
    if settings.key_file and not settings.cert_file:
        reader.error("key_file", "key_file without cert_file (the client certificate)")
    if (password or password_file) and not settings.username:
        reader.error("username", "a password is set but no username")
    if password and password_file:
        reader.error("password_file", "set password or password_file, not both")
    if (
        endpoints
        and any(u.startswith("https:") for u in endpoints) is False
        and (settings.ca_file or settings.cert_file)
    ):
        reader.warn("ca_file", "TLS files are set but every endpoint is http://")
    reader.check_keys(KEYS)
    timing_problems(settings, config, reader)
    return settings, reader.diagnostics


def timing_problems(settings: Settings, config: Config, reader: SettingsReader) -> None:
    """The timing argument (docs/plugins/etcd.md), checked; reported through *reader*.

    A holder's lease cannot expire before ``sent + ttl``, where ``sent`` is when it sent
    its last renewal that etcd answered. It gives its groups up at
    ``sent + ttl - safety_margin``, so the margin must cover the release; a renewal is
    tried every ``renew_interval``, each attempt bounded by ``request_timeout``.
    """
    if not settings.endpoints:
        return
    s = settings
    line_key = "safety_margin" if "safety_margin" in reader.table else "ttl"
    if s.safety_margin >= s.ttl:
        reader.error(
            line_key,
            f"safety_margin {s.safety_margin:g}s must be shorter than ttl {s.ttl}s "
            "(a holder would give its groups up before it could renew)",
        )
        return
    if s.renew_interval >= s.demote_after:
        reader.error(
            "renew_interval" if "renew_interval" in reader.table else line_key,
            f"renew_interval {s.renew_interval:g}s must be shorter than ttl - safety_margin "
            f"= {s.demote_after:g}s, or a holder gives its groups up between two renewals",
        )
    if s.safety_margin <= s.request_timeout:
        reader.error(
            line_key,
            f"safety_margin {s.safety_margin:g}s must be longer than request_timeout "
            f"{s.request_timeout:g}s: a renewal still in flight at the margin must not be "
            "what the release waits for",
        )
    if s.request_timeout * len(s.endpoints) > s.demote_after:
        reader.warn(
            "request_timeout" if "request_timeout" in reader.table else line_key,
            f"trying all {len(s.endpoints)} endpoints takes up to "
            f"{s.request_timeout * len(s.endpoints):g}s, more than the "
            f"{s.demote_after:g}s a holder may go without a renewal",
        )
    # Riding out a leader election (measured: up to WORST_ELECTION seconds) needs
    # that much time, plus one renew interval, before the demotion deadline.
    ride = s.demote_after - s.renew_interval
    if ride < WORST_ELECTION:
        reader.warn(
            line_key,
            f"ttl {s.ttl}s - safety_margin {s.safety_margin:g}s - renew_interval "
            f"{s.renew_interval:g}s = {ride:g}s does not ride out an etcd leader election "
            f"(up to {WORST_ELECTION:g}s measured with etcd 3.4): holders will give their "
            "groups up when etcd's leader changes",
        )
    if s.wait < s.ttl + EXPIRY_LOOP and "acquire_wait" in reader.table:
        reader.warn(
            "acquire_wait",
            f"acquire_wait {s.wait:g}s is shorter than ttl + {EXPIRY_LOOP:g}s: a node "
            "taking over from a dead holder may give up before its lease has gone",
        )
    stop = _worst_stop(config)
    if stop is not None and stop > s.safety_margin:
        reader.warn(
            line_key,
            f"safety_margin {s.safety_margin:g}s is shorter than the worst stop of a group "
            f"({stop:g}s: resources x [resources] stop timeout); a stop that takes longer "
            "may still run when the lease expires and another node starts the group",
        )


def _worst_stop(config: Config) -> float | None:
    if not config.groups:
        return None
    longest = max(len(g.resources) for g in config.groups)
    return longest * config.resource_options.stop / 1000
