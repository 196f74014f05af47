"""What ha.cf's ``stonith``/``stonith_host`` lines and ``[plugins.stonith]`` ask for.

Pure logic: no processes, no network. :func:`read_settings` turns a
:class:`pulse.config.model.Config` into :class:`Settings` (the policy and an ordered
tuple of device descriptions) plus the diagnostics for whatever is wrong, each with
``FILE:LINE`` where the configuration says it and a hint how to fix it.

Heartbeat's ha.cf rules (docs/heartbeat.md#stonith-v1): ``stonith TYPE FILE`` takes the
device parameters from the first line of FILE not starting with ``#``;
``stonith_host HOST|* TYPE PARAMS…`` applies only on the node named HOST (or on every
node for ``*``). Heartbeat has one device: of the lines that apply to this node, the
last one wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pulse.config.model import Config, Source, StonithDirective
from pulse.errors import Diagnostic, Severity
from pulse.plugin.settings import SettingsReader

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


def _one_line(r: SettingsReader, key: str, *, example: str) -> str | None:
    """A non-empty single-line string (it ends up on a command line or stdin)."""
    text = r.text(key, None, example=example)
    if text is not None and any(c in text for c in "\n\r\0"):
        r.error(key, "must be a single line")
        return None
    return text


def read_settings(config: Config, node: str) -> tuple[Settings, list[Diagnostic]]:
    """The plugin's settings for *node*, and what is wrong with the configuration."""
    r = SettingsReader.of(config, PLUGIN)
    action = r.choice("action", ACTIONS, "reboot")
    timeout = r.duration("timeout", DEFAULT_TIMEOUT)
    ttl = r.duration("host_list_ttl", DEFAULT_HOST_LIST_TTL)
    require = r.flag("require_fencing")
    raw_devices = r.tables("devices")
    r.check_keys(_POLICY_KEYS)

    devices: list[DeviceSpec] = []
    warnings: list[Diagnostic] = []
    chosen, overridden = applicable_directive(config.stonith, node)
    if chosen is not None:
        file, line = _where(chosen.source, config.origin)
        for d in overridden:
            ofile, oline = _where(d.source, config.origin)
            warnings.append(
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

    names = {d.name for d in devices}
    for index, dev in enumerate(raw_devices):
        spec = _device(dev, index, action=action, timeout=timeout)
        if spec is None:
            continue
        if spec.name in names:
            dev.error("name", f"{spec.name!r} is used twice; give each device its own name")
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
    return settings, [*warnings, *r.diagnostics]


def _device(r: SettingsReader, index: int, *, action: str, timeout: float) -> DeviceSpec | None:
    """One ``[[plugins.stonith.devices]]`` element, or None when it is wrong (reported)."""
    kind = r.table.get("kind")
    if kind not in KINDS:
        r.error(
            "kind",
            'expected "cluster-glue" (stonith -t TYPE) or "fence-agent" '
            f"(fence_* on stdin), got {kind!r}",
        )
        return None
    before = len(r.diagnostics)
    dev_action = r.choice("action", ACTIONS, action)
    dev_timeout = r.duration("timeout", timeout)
    hosts = r.strings("hosts", (), example='["prime"]', empty=False) if "hosts" in r.table else None
    name = _one_line(r, "name", example='"ipmi-prime"')
    where = Source(r.file, r.line())

    if kind == "cluster-glue":
        r.check_keys(_GLUE_KEYS)
        typ = (
            _one_line(r, "type", example='"external/ipmi"')
            if r.require("type", example='"external/ipmi"')
            else None
        )
        params = r.table.get("params", "")
        if not isinstance(params, str) or "\n" in params:
            r.error(
                "params", "expected one line of values, in the order `stonith -t TYPE -n` lists"
            )
        if typ is None or len(r.diagnostics) > before:
            return None
        assert isinstance(params, str)
        return GlueDeviceSpec(
            name=name or f"{typ}#{index + 1}",
            type=typ,
            params=params.strip(),
            hosts=tuple(h.lower() for h in hosts) if hosts is not None else None,
            action=dev_action,
            timeout=dev_timeout,
            where=where,
        )

    r.check_keys(_AGENT_KEYS)
    agent = (
        _one_line(r, "agent", example='"fence_ipmilan"')
        if r.require("agent", example='"fence_ipmilan"')
        else None
    )
    plug_option = r.text("plug_option", "plug", example='"port"')
    if not _OPTION_NAME.match(plug_option):
        r.error("plug_option", 'expected an option name such as "plug" or "port"')
    options = _options(r.table_at("options"), plug_option)
    host_map = _host_map(r.table_at("host_map"))
    if agent is None or len(r.diagnostics) > before:
        return None
    return AgentDeviceSpec(
        name=name or f"{agent.rsplit('/', 1)[-1]}#{index + 1}",
        agent=agent,
        options=options,
        hosts=tuple(h.lower() for h in hosts) if hosts is not None else None,
        action=dev_action,
        timeout=dev_timeout,
        plug_option=plug_option,
        host_map=host_map,
        where=where,
    )


def _options(r: SettingsReader, plug_option: str) -> tuple[tuple[str, str], ...]:
    """``options = { key = value }``: fence-agents options, sent as ``key=value`` lines."""
    out: list[tuple[str, str]] = []
    for key, value in r.table.items():
        if not _OPTION_NAME.match(key):
            r.error(key, "is not a fence-agents option name")
        elif key.replace("-", "_") in _RESERVED_AGENT_OPTIONS or key == plug_option:
            r.error(
                key,
                "options must not set it: pulse does (the node being fenced, and "
                'action = "reboot"|"off" on the device)',
            )
        elif not isinstance(value, bool | int | float | str):
            r.error(key, "expected a string, number or boolean")
        else:
            text = ("1" if value else "0") if isinstance(value, bool) else str(value)
            if any(c in text for c in "\n\r\0"):
                r.error(key, "must be a single line (it is sent as key=value)")
            else:
                out.append((key, text))
    return tuple(out)


def _host_map(r: SettingsReader) -> tuple[tuple[str, str], ...]:
    """``host_map = { node = "plug" }``."""
    out: list[tuple[str, str]] = []
    for node in r.table:
        plug = _one_line(r, node, example='"bmc-prime"')
        if plug is not None:
            out.append((node.lower(), plug))
    return tuple(out)
