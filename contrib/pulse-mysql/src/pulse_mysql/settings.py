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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pulse.config.durations import parse_bool, parse_duration
from pulse.config.model import Config, ResourceGroup, ResourceSpec
from pulse.errors import Diagnostic, Severity
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


class _Bad(ValueError):
    pass


def _string(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("expected a non-empty string")
    return value.strip()


def _port(value: object) -> int:
    if isinstance(value, bool):
        raise _Bad("expected a port number")
    try:
        port = int(value) if isinstance(value, int | str) else -1
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise _Bad("expected a port number (1-65535)")
    return port


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise _Bad('expected a duration ("30s", "500ms" or seconds)')
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (ms := parse_duration(value)) is not None:
        seconds = ms / 1000.0
    else:
        raise _Bad('expected a duration ("30s", "500ms" or seconds)')
    if seconds < 0:
        raise _Bad("must not be negative")
    return seconds


def _positive_seconds(value: object) -> float:
    seconds = _seconds(value)
    if seconds <= 0:
        raise _Bad("must be more than 0")
    return seconds


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and (b := parse_bool(value)) is not None:
        return b
    raise _Bad("expected true or false")


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


def _gtid(value: object) -> str:
    text = _string(value).lower()
    if text not in GTID_MODES:
        raise _Bad(f"expected one of {', '.join(GTID_MODES)}")
    return text


# key -> converter; every key may appear in TOML and in a MySQLReplica word, except the
# secrets (TOML or defaults_file only) and `groups` (TOML only).
CONVERTERS: dict[str, Callable[[object], object]] = {
    "host": _string,
    "port": _port,
    "socket": _string,
    "user": _string,
    "password": _string,
    "defaults_file": _string,
    "connect_timeout": _positive_seconds,
    "read_timeout": _positive_seconds,
    "write_timeout": _positive_seconds,
    "max_lag": _seconds,
    "apply_timeout": _seconds,
    "poll_interval": _positive_seconds,
    "allow_not_replica": _bool,
    "allow_stopped": _bool,
    "ignore_errnos": _errnos,
    "rejoin_host": _string,
    "rejoin_port": _port,
    "rejoin_user": _string,
    "rejoin_password": _string,
    "rejoin_gtid": _gtid,
}
TOML_ONLY = frozenset({"groups"})


def _suggest(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, [*CONVERTERS, *TOML_ONLY], n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True, slots=True)
class _Where:
    file: str
    line: int

    def diag(self, message: str, severity: Severity = Severity.ERROR) -> Diagnostic:
        return Diagnostic(self.file, self.line, message, severity)


def plugin_table(config: Config) -> Mapping[str, object]:
    return config.plugins.get(PLUGIN, {})


def _toml_line(origin: str, key: str | None) -> int:
    """Best effort: the line of ``[plugins.mysql]`` (or of *key* inside it) in *origin*."""
    if not origin.endswith(".toml"):
        return 0
    try:
        with open(origin, encoding="utf-8") as f:
            lines = f.read(1 << 20).splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    header = 0
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if text.startswith("["):
            if header:
                break
            if text.replace(" ", "") == f"[plugins.{PLUGIN}]":
                header = number
                if key is None:
                    return number
            continue
        if header and key is not None and text.split("=", 1)[0].strip() == key:
            return number
    return header


def _toml_where(config: Config, key: str | None = None) -> _Where:
    return _Where(config.origin, _toml_line(config.origin, key))


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
        elif key not in CONVERTERS:
            problems.append(f"{AGENT}: unknown option {key!r}{_suggest(key)}")
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
    diags: list[Diagnostic] = []
    values: dict[str, object] = {}

    table = plugin_table(config)
    for key, raw in table.items():
        if key in TOML_ONLY:
            continue
        where = _toml_where(config, key)
        if key not in CONVERTERS:
            diags.append(where.diag(f"plugins.{PLUGIN}.{key}: unknown key{_suggest(key)}"))
            continue
        try:
            values[key] = CONVERTERS[key](raw)
        except _Bad as exc:
            diags.append(where.diag(f"plugins.{PLUGIN}.{key}: {exc}"))

    if spec is not None:
        where = _spec_where(config, spec)
        options, problems = word_options(spec)
        diags.extend(where.diag(p) for p in problems)
        for key, raw in options.items():
            try:
                values[key] = CONVERTERS[key](raw)
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
            else _toml_where(config, "defaults_file")
        )
        options, errors, warnings = read_defaults_file(defaults_file)
        diags.extend(where.diag(e) for e in errors)
        diags.extend(where.diag(w, Severity.WARNING) for w in warnings)
        for key in ("host", "port", "socket", "user", "password", "rejoin_user", "rejoin_password"):
            if key in options and key not in values:
                try:
                    values[key] = CONVERTERS[key](options[key])
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
    raw = plugin_table(config).get("groups", [])
    where = _toml_where(config, "groups")
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        return [], [where.diag(f"plugins.{PLUGIN}.groups: expected a list of group names")]
    keys = {g.key for g in config.groups}
    diags = [
        where.diag(
            f"plugins.{PLUGIN}.groups: no resource group is called {name!r} "
            f"(a group is named by its first resource: {', '.join(sorted(keys)) or 'none'})"
        )
        for name in raw
        if name not in keys
    ]
    return [str(x) for x in raw if x in keys], diags


def gated_groups(config: Config) -> list[ResourceGroup]:
    """Groups the takeover check applies to: with a MySQLReplica word, or listed."""
    listed, _ = listed_groups(config)
    return [g for g in config.groups if mysql_words(g) or g.key in listed]


def settings_for_group(config: Config, group: ResourceGroup) -> MySQLSettings:
    words = mysql_words(group)
    settings, _ = resolve(config, words[0] if words else None)
    return settings
