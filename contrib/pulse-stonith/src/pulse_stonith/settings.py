"""What ha.cf's ``stonith``/``stonith_host`` lines and ``[plugins.stonith]`` ask for.

Pure logic: no processes, no network. :func:`read_settings` turns a
:class:`pulse.config.model.Config` into :class:`Settings` (the policy and an ordered
tuple of device descriptions) plus the diagnostics for whatever is wrong, each with
``FILE:LINE`` where the configuration says it and a hint how to fix it.

Heartbeat's rules for the ha.cf lines (spec §7): ``stonith TYPE FILE`` takes the
device parameters from the first line of FILE not starting with ``#``;
``stonith_host HOST|* TYPE PARAMS…`` applies only on the node named HOST (or on every
node for ``*``). Heartbeat has one device: of the lines that apply to this node, the
last one wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pulse.config.model import Config, Source, StonithDirective
from pulse.errors import Diagnostic, Severity

ACTIONS = ("reboot", "off")
DEFAULT_TIMEOUT = 60.0  # seconds; Pacemaker's default fencing timeout
DEFAULT_HOST_LIST_TTL = 3600.0  # Heartbeat checks its device's health hourly
KINDS = ("cluster-glue", "fence-agent")
PLUGIN = "stonith"

_POLICY_KEYS = ("action", "timeout", "require_fencing", "host_list_ttl", "devices")
_GLUE_KEYS = ("kind", "name", "type", "params", "hosts", "timeout", "action")
_AGENT_KEYS = (
    "kind",
    "name",
    "agent",
    "options",
    "hosts",
    "timeout",
    "action",
    "plug_option",
    "host_map",
)
# Options pulse sets itself on a fence agent's stdin.
_RESERVED_AGENT_OPTIONS = ("action", "nodename")
NOWHERE = Source("", 0)
_OPTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class GlueDeviceSpec:
    """A cluster-glue device: ``stonith -t TYPE`` with Heartbeat's ordered params."""

    name: str
    type: str
    params: str
    hosts: tuple[str, ...] | None = None  # None: ask the device (``stonith -l``)
    action: str = "reboot"
    timeout: float = DEFAULT_TIMEOUT
    where: Source = NOWHERE  # where it was configured, for messages


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDeviceSpec:
    """A fence-agents device: ``fence_*`` fed ``key=value`` lines on stdin."""

    name: str
    agent: str
    options: tuple[tuple[str, str], ...] = ()
    hosts: tuple[str, ...] | None = None  # None: every other cluster node
    action: str = "reboot"
    timeout: float = DEFAULT_TIMEOUT
    plug_option: str = "plug"
    host_map: tuple[tuple[str, str], ...] = ()
    where: Source = NOWHERE

    def plug_for(self, node: str) -> str:
        return dict(self.host_map).get(node, node)


DeviceSpec = GlueDeviceSpec | AgentDeviceSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    action: str = "reboot"
    timeout: float = DEFAULT_TIMEOUT
    require_fencing: bool = False
    host_list_ttl: float = DEFAULT_HOST_LIST_TTL
    devices: tuple[DeviceSpec, ...] = ()


# --------------------------------------------------------------------------- ha.cf lines


def applicable_directive(
    directives: Sequence[StonithDirective], node: str
) -> tuple[StonithDirective | None, list[StonithDirective]]:
    """The directive Heartbeat would use on *node*, and the applicable ones it overrides."""
    applicable = [d for d in directives if d.host is None or d.host in ("*", node.lower())]
    if not applicable:
        return None, []
    return applicable[-1], applicable[:-1]


def _where(source: Source | None, fallback: str) -> tuple[str, int]:
    if source is None:
        return fallback, 0
    return source.file, source.line


# --------------------------------------------------------------------------- TOML


class _Lines:
    """Finds the line of ``[plugins.stonith]`` and its ``[[plugins.stonith.devices]]``."""

    _TABLE = re.compile(r"^\s*\[\s*plugins\s*\.\s*stonith\s*\]\s*(#.*)?$")
    _DEVICE = re.compile(r"^\s*\[\[\s*plugins\s*\.\s*stonith\s*\.\s*devices\s*\]\]\s*(#.*)?$")

    def __init__(self, text: str | None) -> None:
        self.table = 0
        self.devices: list[int] = []
        for number, line in enumerate((text or "").splitlines(), start=1):
            if self._TABLE.match(line):
                self.table = number
            elif self._DEVICE.match(line):
                self.devices.append(number)

    def device(self, index: int) -> int:
        return self.devices[index] if index < len(self.devices) else self.table


class _Reader:
    def __init__(self, file: str, lines: _Lines) -> None:
        self.file = file
        self.lines = lines
        self.diags: list[Diagnostic] = []

    def error(self, line: int, message: str) -> None:
        self.diags.append(Diagnostic(self.file, line, message))

    def warning(self, line: int, message: str) -> None:
        self.diags.append(Diagnostic(self.file, line, message, Severity.WARNING))

    def seconds(self, value: object, what: str, line: int) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.error(line, f"{what} must be a positive number of seconds, got {value!r}")
            return None
        return float(value)

    def action(self, value: object, what: str, line: int) -> str | None:
        if value not in ACTIONS:
            self.error(
                line, f"{what} must be one of {', '.join(map(repr, ACTIONS))}, got {value!r}"
            )
            return None
        assert isinstance(value, str)
        return value

    def string(self, value: object, what: str, line: int) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.error(line, f"{what} must be a non-empty string, got {value!r}")
            return None
        if "\n" in value or "\r" in value or "\0" in value:
            self.error(line, f"{what} must be a single line")
            return None
        return value

    def hosts(self, value: object, line: int) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not value:
            self.error(line, f"hosts must be a non-empty list of node names, got {value!r}")
            return None
        out: list[str] = []
        for item in value:
            name = self.string(item, "each of hosts", line)
            if name is None:
                return None
            out.append(name.lower())
        return tuple(out)

    def unknown(
        self, table: Mapping[str, object], known: Sequence[str], what: str, line: int
    ) -> None:
        for key in table:
            if key not in known:
                self.error(line, f"unknown key {key!r} in {what} (known: {', '.join(known)})")


def read_settings(
    config: Config, node: str, *, toml_text: str | None = None
) -> tuple[Settings, list[Diagnostic]]:
    """The plugin's settings for *node*, and what is wrong with the configuration.

    *toml_text* is the TOML file's text when the configuration came from TOML, used
    only to point diagnostics at the right line.
    """
    lines = _Lines(toml_text)
    r = _Reader(config.origin, lines)
    table = config.plugins.get(PLUGIN, {})
    r.unknown(table, _POLICY_KEYS, "[plugins.stonith]", lines.table)

    action, timeout, ttl, require = "reboot", DEFAULT_TIMEOUT, DEFAULT_HOST_LIST_TTL, False
    if "action" in table:
        action = r.action(table["action"], "[plugins.stonith] action", lines.table) or action
    if "timeout" in table:
        timeout = r.seconds(table["timeout"], "[plugins.stonith] timeout", lines.table) or timeout
    if "host_list_ttl" in table:
        ttl = (
            r.seconds(table["host_list_ttl"], "[plugins.stonith] host_list_ttl", lines.table) or ttl
        )
    if "require_fencing" in table:
        value = table["require_fencing"]
        if isinstance(value, bool):
            require = value
        else:
            r.error(
                lines.table,
                f"[plugins.stonith] require_fencing must be true or false, got {value!r}",
            )

    devices: list[DeviceSpec] = []
    chosen, overridden = applicable_directive(config.stonith, node)
    if chosen is not None:
        file, line = _where(chosen.source, config.origin)
        for d in overridden:
            ofile, oline = _where(d.source, config.origin)
            r.diags.append(
                Diagnostic(
                    ofile,
                    oline,
                    f"stonith: this {d.type} device is not used: Heartbeat uses one device, "
                    f"the last line that applies to {node} ({file}:{line}); "
                    "list several devices in [[plugins.stonith.devices]] instead",
                    Severity.WARNING,
                )
            )
        devices.append(
            GlueDeviceSpec(
                name=f"stonith:{chosen.type}",
                type=chosen.type,
                params=chosen.params,
                action=action,
                timeout=timeout,
                where=Source(file, line),
            )
        )

    raw_devices = table.get("devices", [])
    if not isinstance(raw_devices, list):
        r.error(
            lines.table,
            "[plugins.stonith] devices must be an array of tables ([[plugins.stonith.devices]])",
        )
        raw_devices = []
    names = {d.name for d in devices}
    for index, raw in enumerate(raw_devices):
        line = lines.device(index)
        if not isinstance(raw, dict):
            r.error(line, f"device {index + 1}: expected a table, got {type(raw).__name__}")
            continue
        spec = _device(r, raw, index, line, action=action, timeout=timeout)
        if spec is None:
            continue
        if spec.name in names:
            r.error(line, f"device name {spec.name!r} is used twice; give each device its own name")
            continue
        names.add(spec.name)
        devices.append(spec)

    settings = Settings(
        action=action,
        timeout=timeout,
        require_fencing=require,
        host_list_ttl=ttl,
        devices=tuple(devices),
    )
    return settings, r.diags


def _device(
    r: _Reader, raw: Mapping[str, object], index: int, line: int, *, action: str, timeout: float
) -> DeviceSpec | None:
    label = f"device {index + 1}"
    kind = raw.get("kind")
    if kind not in KINDS:
        r.error(
            line,
            f'{label}: kind must be "cluster-glue" (stonith -t TYPE) or "fence-agent" '
            f"(fence_* on stdin), got {kind!r}",
        )
        return None
    before = len(r.diags)
    r.unknown(raw, _GLUE_KEYS if kind == "cluster-glue" else _AGENT_KEYS, label, line)
    dev_action = r.action(raw["action"], f"{label}: action", line) if "action" in raw else action
    dev_timeout = (
        r.seconds(raw["timeout"], f"{label}: timeout", line) if "timeout" in raw else timeout
    )
    hosts = r.hosts(raw["hosts"], line) if "hosts" in raw else None
    name = r.string(raw["name"], f"{label}: name", line) if "name" in raw else None

    if kind == "cluster-glue":
        typ = r.string(raw.get("type"), f'{label}: type (e.g. "external/ipmi")', line)
        params = raw.get("params", "")
        if not isinstance(params, str) or "\n" in params:
            r.error(
                line,
                f"{label}: params must be one line of values, "
                "in the order `stonith -t TYPE -n` lists",
            )
            return None
        if typ is None or dev_action is None or dev_timeout is None or len(r.diags) > before:
            return None
        return GlueDeviceSpec(
            name=name or f"{typ}#{index + 1}",
            type=typ,
            params=params.strip(),
            hosts=hosts,
            action=dev_action,
            timeout=dev_timeout,
            where=Source(r.file, line),
        )

    agent = r.string(raw.get("agent"), f'{label}: agent (e.g. "fence_ipmilan")', line)
    options = _options(r, raw.get("options", {}), label, line)
    plug_option = raw.get("plug_option", "plug")
    if not isinstance(plug_option, str) or not _OPTION_NAME.match(plug_option):
        r.error(line, f'{label}: plug_option must be an option name such as "plug" or "port"')
        return None
    host_map = _host_map(r, raw.get("host_map", {}), label, line)
    if (
        agent is None
        or options is None
        or host_map is None
        or dev_action is None
        or dev_timeout is None
        or len(r.diags) > before
    ):
        return None
    if any(k == plug_option for k, _ in options):
        r.error(
            line,
            f"{label}: options must not set {plug_option!r}: "
            "pulse sets it to the node being fenced",
        )
        return None
    return AgentDeviceSpec(
        name=name or f"{agent.rsplit('/', 1)[-1]}#{index + 1}",
        agent=agent,
        options=options,
        hosts=hosts,
        action=dev_action,
        timeout=dev_timeout,
        plug_option=plug_option,
        host_map=host_map,
        where=Source(r.file, line),
    )


def _options(r: _Reader, raw: object, label: str, line: int) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(raw, dict):
        r.error(line, f"{label}: options must be a table of key = value")
        return None
    out: list[tuple[str, str]] = []
    for key, value in raw.items():
        if not _OPTION_NAME.match(key):
            r.error(line, f"{label}: option name {key!r} is not a fence-agents option name")
            return None
        if key.replace("-", "_") in _RESERVED_AGENT_OPTIONS:
            r.error(
                line,
                f"{label}: options must not set {key!r}: pulse sets it "
                '(use action = "reboot"|"off" on the device)',
            )
            return None
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, int | float | str):
            text = str(value)
        else:
            r.error(line, f"{label}: option {key} must be a string, number or boolean")
            return None
        if "\n" in text or "\r" in text or "\0" in text:
            r.error(line, f"{label}: option {key} must be a single line (it is sent as key=value)")
            return None
        out.append((key, text))
    return tuple(out)


def _host_map(r: _Reader, raw: object, label: str, line: int) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(raw, dict):
        r.error(line, f'{label}: host_map must be a table of node = "plug"')
        return None
    out: list[tuple[str, str]] = []
    for node, plug in raw.items():
        text = r.string(plug, f"{label}: host_map.{node}", line)
        if text is None:
            return None
        out.append((node.lower(), text))
    return tuple(out)
