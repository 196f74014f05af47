"""The plugin's settings: the TOML table ``[plugins.asterisk]`` and the haresources word
``AsteriskBindaddr::VIP[::CONFDIR][::name=value...]``, validated into one frozen record.

Validation never raises: problems come back as :class:`pulse.errors.Diagnostic` with
the file and line they were written on and a hint how to fix them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pulse.config.model import Config, ResourceSpec
from pulse.errors import Diagnostic, Severity
from pulse.plugin.settings import SettingsReader, parse_flag

PLUGIN = "asterisk"
AGENT = "AsteriskBindaddr"
DEFAULT_CONFDIR = "/etc/asterisk"
DEFAULT_FILES = ("sip.conf", "iax.conf", "h323.conf", "manager.conf", "pjsip.conf")
DEFAULT_RELOAD = ("asterisk", "-rx", "core reload")


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
_ARGV_EXAMPLE = '["asterisk", "-rx", "core reload"]'


def _argv(r: SettingsReader, key: str, default: tuple[str, ...], *, empty: bool) -> tuple[str, ...]:
    if isinstance(r.table.get(key), str):
        r.error(
            key,
            "expected a list of arguments, got a string; write it as an argv list "
            f"(no shell), e.g. {key} = {_ARGV_EXAMPLE}",
        )
        return default
    return r.strings(key, default, example=_ARGV_EXAMPLE, empty=empty)


def settings_from_table(r: SettingsReader) -> tuple[AsteriskSettings, list[Diagnostic]]:
    """``[plugins.asterisk]`` -> settings (defaults where a key is absent or wrong)."""
    before = len(r.diagnostics)
    files = r.strings("files", DEFAULT_FILES, example='["sip.conf", "manager.conf"]', empty=False)
    explicit = "files" in r.table and len(r.diagnostics) == before
    settings = AsteriskSettings(
        confdir=r.path("confdir", DEFAULT_CONFDIR),
        files=tuple(f.strip() for f in files),
        files_explicit=explicit,
        reload_command=_argv(r, "reload_command", DEFAULT_RELOAD, empty=False),
        check_command=_argv(r, "check_command", (), empty=True),
        check_expect=r.optional_text("check_expect", example='"198.51.100.100"'),
        reload_required=r.flag("reload_required", True),
        timeout=r.duration("timeout", 30.0),
        check_timeout=r.duration("check_timeout", 10.0),
        check_interval=r.duration("check_interval", 1.0),
    )
    r.check_keys(_KEYS)
    return settings, r.diagnostics


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
            flag = parse_flag(value)
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


def base_settings(config: Config) -> AsteriskSettings:
    settings, _ = settings_from_table(SettingsReader.of(config, PLUGIN))
    return settings


def resolve(spec: ResourceSpec, config: Config) -> tuple[Binding | None, list[str]]:
    return binding_from_args(spec.args, base_settings(config))


def _looks_like_asterisk(spec: ResourceSpec) -> bool:
    name = spec.agent.rsplit(":", 1)[-1].lower()
    return name.startswith("asterisk") and spec.agent != AGENT


def validate(config: Config) -> list[Diagnostic]:
    """Everything ``pulse check`` should say about this plugin's configuration."""
    reader = SettingsReader.of(config, PLUGIN)
    base, diags = settings_from_table(reader)
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
    if reader.table and not used:
        diags.append(
            Diagnostic(
                reader.file,
                reader.line(),
                f"[plugins.{PLUGIN}] is set but no resource group uses {AGENT}; add "
                f"{AGENT}::VIP after the floating IP in a group",
                Severity.WARNING,
            )
        )
    return diags
