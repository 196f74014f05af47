"""The plugin's settings: the TOML table ``[plugins.asterisk]`` and the haresources word
``AsteriskBindaddr::VIP[::CONFDIR][::name=value...]``, validated into one frozen record.

Validation never raises: problems come back as :class:`pulse.errors.Diagnostic` with
the file and line they were written on and a hint how to fix them.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from pulse.config.model import Config, ResourceSpec
from pulse.config.toml import key_lines
from pulse.errors import Diagnostic, Severity

PLUGIN = "asterisk"
AGENT = "AsteriskBindaddr"
DEFAULT_CONFDIR = "/etc/asterisk"
DEFAULT_FILES = ("sip.conf", "iax.conf", "h323.conf", "manager.conf", "pjsip.conf")
DEFAULT_RELOAD = ("asterisk", "-rx", "core reload")

_TRUE = ("yes", "on", "true", "1", "y")
_FALSE = ("no", "off", "false", "0", "n")


@dataclass(frozen=True, slots=True, kw_only=True)
class AsteriskSettings:
    """How to rebind Asterisk.

    ``files`` are relative to ``confdir`` (or absolute). With the default list a file
    that does not exist, or has no section to rewrite, is skipped; a file listed
    explicitly must exist and have one. ``check_expect`` defaults to the floating IP.
    Times are seconds: ``timeout`` per command, ``check_timeout`` for the check to
    show the address, polling every ``check_interval``.
    """

    confdir: str = DEFAULT_CONFDIR
    files: tuple[str, ...] = DEFAULT_FILES
    files_explicit: bool = False
    reload_command: tuple[str, ...] = DEFAULT_RELOAD
    check_command: tuple[str, ...] = ()
    check_expect: str | None = None
    reload_required: bool = True
    timeout: float = 30.0
    check_timeout: float = 10.0
    check_interval: float = 1.0

    def paths(self) -> tuple[str, ...]:
        return tuple(f if os.path.isabs(f) else os.path.join(self.confdir, f) for f in self.files)


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """One ``AsteriskBindaddr`` word, resolved: the address and the settings to use."""

    vip: str
    settings: AsteriskSettings


# --------------------------------------------------------------------------- TOML lines


def toml_lines(origin: str) -> dict[str, int]:
    """Line of ``[plugins.asterisk]`` (key ``""``) and of each key in it, when the config
    came from a TOML file; empty otherwise."""
    if not origin.endswith(".toml") or not os.path.isfile(origin):
        return {}
    try:
        with open(origin, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    found: dict[str, int] = {}
    for path, line in key_lines(text).items():
        if path[:2] == ("plugins", PLUGIN):
            found[".".join(str(p) for p in path[2:])] = line
    return found


class _Report:
    def __init__(self, file: str, lines: Mapping[str, int]) -> None:
        self.file = file
        self.lines = lines
        self.diags: list[Diagnostic] = []

    def error(self, key: str, message: str) -> None:
        line = self.lines.get(key, self.lines.get("", 0))
        self.diags.append(Diagnostic(self.file, line, message))


# --------------------------------------------------------------------------- the TOML table

_KEYS = (
    "confdir",
    "files",
    "reload_command",
    "check_command",
    "check_expect",
    "reload_required",
    "timeout",
    "check_timeout",
    "check_interval",
)


def _argv(r: _Report, key: str, value: object, *, allow_empty: bool) -> tuple[str, ...] | None:
    where = f"[plugins.{PLUGIN}] {key}"
    if isinstance(value, str):
        r.error(
            key,
            f"{where}: expected a list of arguments, got a string; write it as an argv "
            f'list (no shell), e.g. {key} = ["asterisk", "-rx", "core reload"]',
        )
        return None
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        r.error(key, f'{where}: expected a list of strings, e.g. ["asterisk", "-rx", "..."]')
        return None
    if not value and not allow_empty:
        r.error(key, f"{where}: must not be empty (the command to reload Asterisk)")
        return None
    if value and not value[0]:
        r.error(key, f"{where}: the program name is empty")
        return None
    return tuple(value)


def _seconds(r: _Report, key: str, value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        r.error(key, f"[plugins.{PLUGIN}] {key}: expected a number of seconds, e.g. {key} = 10")
        return None
    if not math.isfinite(value) or value <= 0:
        r.error(key, f"[plugins.{PLUGIN}] {key}: must be more than 0 seconds")
        return None
    return float(value)


def _files(r: _Report, key: str, value: object) -> tuple[str, ...] | None:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(a, str) and a.strip() for a in value)
    ):
        r.error(
            key,
            f"[plugins.{PLUGIN}] {key}: expected a non-empty list of file names, e.g. "
            'files = ["sip.conf", "manager.conf"]',
        )
        return None
    return tuple(a.strip() for a in value)


def settings_from_table(
    table: Mapping[str, object], *, file: str, lines: Mapping[str, int] | None = None
) -> tuple[AsteriskSettings, list[Diagnostic]]:
    """``[plugins.asterisk]`` -> settings (defaults where a key is absent or wrong)."""
    r = _Report(file, lines or {})
    s = AsteriskSettings()
    for key, value in table.items():
        if key not in _KEYS:
            near = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f" (did you mean {near[0]}?)" if near else f"; known keys: {', '.join(_KEYS)}"
            r.error(key, f"[plugins.{PLUGIN}] {key}: unknown key{hint}")
            continue
        if key == "confdir":
            if not isinstance(value, str) or not os.path.isabs(value):
                r.error(
                    key,
                    f"[plugins.{PLUGIN}] confdir: expected an absolute directory, "
                    f'e.g. confdir = "{DEFAULT_CONFDIR}"',
                )
            else:
                s = replace(s, confdir=os.path.normpath(value))
        elif key == "files":
            files = _files(r, key, value)
            if files is not None:
                s = replace(s, files=files, files_explicit=True)
        elif key == "reload_command":
            argv = _argv(r, key, value, allow_empty=False)
            if argv is not None:
                s = replace(s, reload_command=argv)
        elif key == "check_command":
            argv = _argv(r, key, value, allow_empty=True)
            if argv is not None:
                s = replace(s, check_command=argv)
        elif key == "check_expect":
            if not isinstance(value, str) or not value:
                r.error(key, f"[plugins.{PLUGIN}] check_expect: expected a non-empty string")
            else:
                s = replace(s, check_expect=value)
        elif key == "reload_required":
            if not isinstance(value, bool):
                r.error(
                    key,
                    f"[plugins.{PLUGIN}] reload_required: expected true or false "
                    "(false: a failed reload is only a warning)",
                )
            else:
                s = replace(s, reload_required=value)
        else:
            secs = _seconds(r, key, value)
            if secs is None:
                pass
            elif key == "timeout":
                s = replace(s, timeout=secs)
            elif key == "check_timeout":
                s = replace(s, check_timeout=secs)
            else:
                s = replace(s, check_interval=secs)
    return s, r.diags


# --------------------------------------------------------------------------- the haresources word


def parse_vip(text: str) -> str | None:
    """``198.51.100.100`` (also ``198.51.100.100/24/eth0`` as written for IPaddr)."""
    addr = text.split("/", 1)[0].strip()
    if addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return None


def _yes_no(text: str) -> bool | None:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


def binding_from_args(
    args: Sequence[str], base: AsteriskSettings
) -> tuple[Binding | None, list[str]]:
    """``VIP[::CONFDIR][::reload_required=no][::files=sip.conf,iax.conf]``."""
    problems: list[str] = []
    example = f"{AGENT}::198.51.100.100 or {AGENT}::198.51.100.100::/etc/asterisk"
    if not args or not args[0]:
        return None, [f"{AGENT} needs the floating IP address: {example}"]
    vip = parse_vip(args[0])
    if vip is None:
        problems.append(f"{AGENT}: [{args[0]}] is not an IP address; write {example}")
    settings = base
    for arg in args[1:]:
        name, eq, value = arg.partition("=")
        if not eq:
            if not os.path.isabs(arg):
                problems.append(
                    f"{AGENT}: [{arg}] is not an absolute directory (the Asterisk "
                    f"configuration directory, e.g. {DEFAULT_CONFDIR})"
                )
            else:
                settings = replace(settings, confdir=os.path.normpath(arg))
        elif name == "reload_required":
            flag = _yes_no(value)
            if flag is None:
                problems.append(f"{AGENT}: reload_required={value}: expected yes or no")
            else:
                settings = replace(settings, reload_required=flag)
        elif name == "files":
            files = tuple(f.strip() for f in value.split(",") if f.strip())
            if not files:
                problems.append(f"{AGENT}: files= needs file names, e.g. files=sip.conf,iax.conf")
            else:
                settings = replace(settings, files=files, files_explicit=True)
        else:
            problems.append(
                f"{AGENT}: unknown option [{name}]; the word takes "
                "VIP[::CONFDIR][::reload_required=yes|no][::files=a.conf,b.conf]"
            )
    if vip is None or problems:
        return None, problems
    return Binding(vip=vip, settings=settings), []


# --------------------------------------------------------------------------- the whole config


def plugin_table(config: Config) -> Mapping[str, object]:
    table = config.plugins.get(PLUGIN, {})
    return table if isinstance(table, Mapping) else {}


def base_settings(config: Config) -> AsteriskSettings:
    settings, _ = settings_from_table(plugin_table(config), file=config.origin)
    return settings


def resolve(spec: ResourceSpec, config: Config) -> tuple[Binding | None, list[str]]:
    return binding_from_args(spec.args, base_settings(config))


def _looks_like_asterisk(spec: ResourceSpec) -> bool:
    name = spec.agent.rsplit(":", 1)[-1].lower()
    return name.startswith("asterisk") and spec.agent != AGENT


def validate(config: Config) -> list[Diagnostic]:
    """Everything ``pulse check`` should say about this plugin's configuration."""
    table = plugin_table(config)
    lines = toml_lines(config.origin)
    base, diags = settings_from_table(table, file=config.origin, lines=lines)
    if PLUGIN in config.plugins and not isinstance(config.plugins[PLUGIN], Mapping):
        diags.append(
            Diagnostic(config.origin, lines.get("", 0), f"[plugins.{PLUGIN}] must be a table")
        )
    used = False
    for group in config.groups:
        for i, spec in enumerate(group.resources):
            if spec.agent != AGENT:
                continue
            used = True
            src = spec.source or group.source
            file, line = (src.file, src.line) if src is not None else (config.origin, 0)
            binding, problems = binding_from_args(spec.args, base)
            diags.extend(Diagnostic(file, line, p) for p in problems)
            if binding is None:
                continue
            earlier = group.resources[:i]
            if not any(binding.vip in (parse_vip(a) for a in (s.raw, *s.args)) for s in earlier):
                diags.append(
                    Diagnostic(
                        file,
                        line,
                        f"{spec.raw}: no resource before it in the group adds {binding.vip}; "
                        f"put it after the address, e.g. `{group.node} {binding.vip} "
                        f"{spec.raw} asterisk`",
                        Severity.WARNING,
                    )
                )
            later = [s for s in group.resources[i + 1 :] if _looks_like_asterisk(s)]
            if later and binding.settings.reload_required:
                diags.append(
                    Diagnostic(
                        file,
                        line,
                        f"{spec.raw}: Asterisk is started later in this group ({later[0].raw}), "
                        "so the reload at start will fail; set reload_required = false in "
                        f"[plugins.{PLUGIN}] or write {spec.raw}::reload_required=no",
                        Severity.WARNING,
                    )
                )
            if not os.path.isdir(binding.settings.confdir):
                diags.append(
                    Diagnostic(
                        file,
                        line,
                        f"{spec.raw}: {binding.settings.confdir} does not exist on this "
                        "machine (is Asterisk installed? the confdir can be given as "
                        f"{AGENT}::VIP::/path/to/asterisk)",
                        Severity.WARNING,
                    )
                )
    if table and not used:
        diags.append(
            Diagnostic(
                config.origin,
                lines.get("", 0),
                f"[plugins.{PLUGIN}] is set but no resource group uses {AGENT}; add "
                f"{AGENT}::VIP after the floating IP in a group",
                Severity.WARNING,
            )
        )
    return diags
