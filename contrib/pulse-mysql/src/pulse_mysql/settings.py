"""The plugin's settings: ``[plugins.mysql]``, ``MySQLReplica::k=v`` words, my.cnf files.

Layers, later wins: built-in defaults, the TOML table ``[plugins.mysql]``, then the
``k=v`` arguments of a group's ``MySQLReplica`` word. Credentials come from TOML or
from a my.cnf-style ``defaults_file`` (sections ``[client]`` then ``[pulse]``), never
from haresources, which is world-readable by tradition, and never from a command line.

Everything here is pure except :func:`read_defaults_file`, which reads one small
local file (allowed in ``pulse_configure``: it validates, it does not connect).
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from pulse.config.model import Config, ResourceGroup, ResourceSpec
from pulse.errors import Diagnostic, Severity
from pulse.plugin.settings import SettingsReader, did_you_mean, parse_flag, parse_seconds
from pulse_mysql.replication import Policy

PLUGIN = "mysql"
AGENT = "MySQLReplica"
DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"
DEFAULT_PORT = 3306
SECRET_KEYS = frozenset({"password", "rejoin_password"})
GTID_MODES = ("current_pos", "slave_pos", "auto_position", "off")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """How to reach the local mysqld. Without host, the unix socket is used."""

    host: str | None = None
    port: int = DEFAULT_PORT
    socket: str | None = None
    user: str = "root"
    password: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0

    @property
    def where(self) -> str:
        if self.host:
            return f"{self.user}@{self.host}:{self.port}"
        return f"{self.user}@{self.socket or DEFAULT_SOCKET}"

    @property
    def call_timeout(self) -> float:
        """An upper bound for one short conversation (connect, a few queries)."""
        return self.connect_timeout + 2 * self.read_timeout + self.write_timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejoin:
    """Where a demoted server replicates from (``CHANGE MASTER/REPLICATION SOURCE TO``)."""

    host: str
    port: int = DEFAULT_PORT
    user: str
    password: str = field(default="", repr=False)
    gtid: str = "current_pos"  # MariaDB MASTER_USE_GTID, or auto_position (MySQL), or off


@dataclass(frozen=True, slots=True, kw_only=True)
class MySQLSettings:
    connection: Connection = field(default_factory=Connection)
    policy: Policy = field(default_factory=Policy)
    poll_interval: float = 1.0
    rejoin: Rejoin | None = None

    @property
    def check_timeout(self) -> float:
        """The takeover check's own timeout: the apply wait plus a last look."""
        return self.policy.apply_timeout + 2 * self.connection.call_timeout + 1.0

    @property
    def promote_timeout(self) -> float:
        """How long a promotion may take (the apply wait plus the statements)."""
        return self.policy.apply_timeout + 4 * self.connection.call_timeout


# --------------------------------------------------------------------------- my.cnf


def parse_mycnf(text: str, groups: Sequence[str] = ("client", "pulse")) -> dict[str, str]:
    """Options of the given ``[groups]`` of a my.cnf text, later groups winning.

    Keys are normalised to underscores (``rejoin-user`` = ``rejoin_user``); quotes
    around values are removed; ``!include`` lines and bare flags are ignored.
    Raises ``ValueError`` on a syntax error.
    """
    parser = configparser.RawConfigParser(
        allow_no_value=True, strict=False, comment_prefixes=("#", ";", "!"), interpolation=None
    )
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    out: dict[str, str] = {}
    for group in groups:
        if not parser.has_section(group):
            continue
        for key in parser.options(group):
            raw: str | None = parser.get(group, key)  # None for a bare flag
            if raw is None:
                continue
            value = raw.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            out[key.replace("-", "_")] = value
    return out


def read_defaults_file(path: str) -> tuple[dict[str, str], list[str], list[str]]:
    """(options, errors, warnings) of a my.cnf-style file."""
    try:
        with open(path, encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            text = f.read(1 << 20)
    except OSError as exc:
        return {}, [f"cannot read defaults_file {path}: {exc.strerror or exc}"], []
    warnings: list[str] = []
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        warnings.append(
            f"defaults_file {path} holds credentials and is readable by everyone; chmod 600 {path}"
        )
    try:
        options = parse_mycnf(text)
    except ValueError as exc:
        return {}, [f"defaults_file {path}: {exc}"], warnings
    return options, [], warnings


# --------------------------------------------------------------------------- values

# Every key, by the kind of value it takes. The TOML table is read with pulse's
# SettingsReader (TOML types: a port is a number, a flag true or false); a
# MySQLReplica word's k=v options and a defaults_file give strings, converted below by
# the same rules (durations through pulse.plugin.settings.parse_seconds).
TEXT = {
    "host": '"127.0.0.1"',
    "socket": '"/run/mysqld/mysqld.sock"',
    "user": '"pulse"',
    "password": '"secret"',
    "defaults_file": '"/etc/ha.d/mysql.cnf"',
    "rejoin_host": '"198.51.100.10"',
    "rejoin_user": '"repl"',
    "rejoin_password": '"secret"',
}
PORTS = ("port", "rejoin_port")
DURATIONS = {  # key -> whether 0 is allowed
    "connect_timeout": False,
    "read_timeout": False,
    "write_timeout": False,
    "max_lag": True,
    "apply_timeout": True,
    "poll_interval": False,
}
FLAGS = ("allow_not_replica", "allow_stopped")
KEYS = (*TEXT, *PORTS, *DURATIONS, *FLAGS, "ignore_errnos", "rejoin_gtid")
TOML_ONLY = ("groups",)


class _Bad(ValueError):
    pass


def _errnos(value: object) -> frozenset[int]:
    items: list[object]
    if isinstance(value, str):
        items = [x for x in value.replace(",", " ").split() if x]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise _Bad("expected a list of error numbers")
    out = set()
    for item in items:
        try:
            out.add(int(item) if isinstance(item, int | str) and item != "" else -1)
        except ValueError:
            out.add(-1)
    if any(n <= 0 for n in out):
        raise _Bad("expected a list of positive error numbers")
    return frozenset(out)


def convert_word_value(key: str, text: str) -> object:
    """The value of ``key=text`` (a word option or a defaults_file line); raises _Bad."""
    if key in TEXT:
        if not text.strip():
            raise _Bad("expected a non-empty string")
        return text.strip()
    if key in PORTS:
        digits = text.strip()
        port = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 5 else -1
        if not 1 <= port <= 65535:
            raise _Bad("expected a port number (1-65535)")
        return port
    if key in DURATIONS:
        seconds = parse_seconds(text)
        zero = DURATIONS[key]
        if seconds is None or seconds < 0 or (seconds == 0 and not zero):
            low = "0 or more" if zero else "more than 0"
            raise _Bad(f'expected a duration of {low} seconds ("30s", "500ms" or seconds)')
        return seconds
    if key in FLAGS:
        flag = parse_flag(text)
        if flag is None:
            raise _Bad("expected true or false")
        return flag
    if key == "ignore_errnos":
        return _errnos(text)
    mode = text.strip().lower()
    if mode not in GTID_MODES:
        raise _Bad(f"expected one of {', '.join(GTID_MODES)}")
    return mode


def toml_values(r: SettingsReader) -> dict[str, object]:
    """The keys ``[plugins.mysql]`` sets correctly (problems go to *r*'s diagnostics)."""
    values: dict[str, object | None] = {}
    for key, example in TEXT.items():
        values[key] = r.text(key, None, example=example)
    for key in PORTS:
        values[key] = r.integer(key, None, low=1, high=65535)
    for key, zero in DURATIONS.items():
        values[key] = r.duration(key, None, zero=zero)
    for key in FLAGS:
        values[key] = r.flag(key, None)
    values["rejoin_gtid"] = r.choice("rejoin_gtid", GTID_MODES, None)
    if "ignore_errnos" in r.table:
        try:
            values["ignore_errnos"] = _errnos(r.table["ignore_errnos"])
        except _Bad as exc:
            r.error("ignore_errnos", f"{exc}, e.g. ignore_errnos = [1062]")
    r.check_keys((*KEYS, *TOML_ONLY))
    return {k: v for k, v in values.items() if v is not None}


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True, slots=True)
class _Where:
    file: str
    line: int

    def diag(self, message: str, severity: Severity = Severity.ERROR) -> Diagnostic:
        return Diagnostic(self.file, self.line, message, severity)


def plugin_table(config: Config) -> Mapping[str, object]:
    return config.plugins.get(PLUGIN, {})


def _spec_where(config: Config, spec: ResourceSpec) -> _Where:
    if spec.source is not None:
        return _Where(spec.source.file, spec.source.line)
    return _Where(config.origin, 0)


def word_options(spec: ResourceSpec) -> tuple[dict[str, str], list[str]]:
    """``k=v`` arguments of a ``MySQLReplica::k=v::...`` word, and what is wrong with them."""
    options: dict[str, str] = {}
    problems: list[str] = []
    for arg in spec.args:
        if "=" not in arg:
            problems.append(f"{AGENT} argument {arg!r} is not key=value (e.g. port=3306)")
            continue
        key, _, value = arg.partition("=")
        key = key.strip().replace("-", "_")
        if key in SECRET_KEYS:
            problems.append(
                f"{AGENT}: {key} must not be written in haresources (every user can "
                "read it); put it in a defaults_file (chmod 600) or in [plugins.mysql]"
            )
        elif key not in KEYS:
            problems.append(f"{AGENT}: unknown option {key!r}{did_you_mean(key, KEYS)}")
        else:
            options[key] = value
    return options, problems


def resolve(
    config: Config, spec: ResourceSpec | None = None
) -> tuple[MySQLSettings, list[Diagnostic]]:
    """The settings for one ``MySQLReplica`` word (or the table's defaults without one).

    Always returns usable settings (defaults where a value was bad) together with the
    diagnostics; callers refuse to run when any diagnostic is an error.
    """
    reader = SettingsReader.of(config, PLUGIN)
    values = toml_values(reader)
    diags: list[Diagnostic] = reader.diagnostics

    if spec is not None:
        where = _spec_where(config, spec)
        options, problems = word_options(spec)
        diags.extend(where.diag(p) for p in problems)
        for key, raw in options.items():
            try:
                values[key] = convert_word_value(key, raw)
            except _Bad as exc:
                diags.append(where.diag(f"{AGENT}: {key}={raw}: {exc}"))

    defaults_file = values.get("defaults_file")
    if isinstance(defaults_file, str):
        if not os.path.isabs(defaults_file) and config.origin:
            base = config.origin if os.path.isdir(config.origin) else os.path.dirname(config.origin)
            defaults_file = os.path.join(base, defaults_file)
        where = (
            _spec_where(config, spec)
            if spec is not None and "defaults_file" in word_options(spec)[0]
            else _Where(reader.file, reader.line("defaults_file"))
        )
        options, errors, warnings = read_defaults_file(defaults_file)
        diags.extend(where.diag(e) for e in errors)
        diags.extend(where.diag(w, Severity.WARNING) for w in warnings)
        for key in ("host", "port", "socket", "user", "password", "rejoin_user", "rejoin_password"):
            if key in options and key not in values:
                try:
                    values[key] = convert_word_value(key, options[key])
                except _Bad as exc:
                    diags.append(where.diag(f"defaults_file {defaults_file}: {key}: {exc}"))

    return _build(values), diags


def _build(values: Mapping[str, object]) -> MySQLSettings:
    base = MySQLSettings()
    conn = base.connection
    conn_fields = ("host", "port", "socket", "user", "password")
    timeouts = ("connect_timeout", "read_timeout", "write_timeout")
    connection = replace(
        conn,
        **{k: values[k] for k in (*conn_fields, *timeouts) if k in values},  # type: ignore[arg-type]
    )
    policy = replace(
        base.policy,
        **{  # type: ignore[arg-type]
            k: values[k]
            for k in ("max_lag", "apply_timeout", "allow_not_replica", "allow_stopped")
            if k in values
        },
    )
    ignore = values.get("ignore_errnos")
    if isinstance(ignore, frozenset):
        policy = replace(policy, ignore_errnos=frozenset(int(x) for x in ignore))
    rejoin = None
    host = values.get("rejoin_host")
    if isinstance(host, str):
        rejoin = Rejoin(
            host=host,
            port=int(str(values.get("rejoin_port", DEFAULT_PORT))),
            user=str(values.get("rejoin_user", "")),
            password=str(values.get("rejoin_password", "")),
            gtid=str(values.get("rejoin_gtid", "current_pos")),
        )
    poll = values.get("poll_interval")
    return MySQLSettings(
        connection=connection,
        policy=policy,
        poll_interval=float(poll) if isinstance(poll, float) else base.poll_interval,
        rejoin=rejoin,
    )


# --------------------------------------------------------------------------- groups


def mysql_words(group: ResourceGroup) -> list[ResourceSpec]:
    return [r for r in group.resources if r.agent == AGENT]


def listed_groups(config: Config) -> tuple[list[str], list[Diagnostic]]:
    """Group keys named by ``[plugins.mysql] groups``, and what is wrong with the list."""
    r = SettingsReader.of(config, PLUGIN)
    names = r.strings("groups", example='["web"]')
    keys = {g.key for g in config.groups}
    for name in names:
        if name not in keys:
            r.error(
                "groups",
                f"no resource group is called {name!r} (a group is named by its first "
                f"resource: {', '.join(sorted(keys)) or 'none'})",
            )
    return [name for name in names if name in keys], r.diagnostics


def gated_groups(config: Config) -> list[ResourceGroup]:
    """Groups the takeover check applies to: with a MySQLReplica word, or listed."""
    listed, _ = listed_groups(config)
    return [g for g in config.groups if mysql_words(g) or g.key in listed]


def settings_for_group(config: Config, group: ResourceGroup) -> MySQLSettings:
    words = mysql_words(group)
    settings, _ = resolve(config, words[0] if words else None)
    return settings
