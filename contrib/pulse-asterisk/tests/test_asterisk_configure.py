"""``pulse check`` for the plugin: FILE:LINE diagnostics with a fix-it hint, never a
traceback; the plugin is found through its entry point."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pulse_asterisk
import pytest

from pulse.config import load_config
from pulse.errors import Severity
from pulse.plugin.host import PluginHost, load_plugins
from pulse.plugin.settings import SettingsReader

AUTHKEY = '[auth]\nuse = 1\n[[auth.keys]]\nindex = 1\nmethod = "sha1"\nkey = "k"\n'


def write_toml(tmp_path: Path, groups: str, plugin: str = "") -> Path:
    path = tmp_path / "pulse.toml"
    path.write_text(
        '[cluster]\nnodes = ["prime", "calc"]\n'
        '[[links]]\ntype = "bcast"\ninterface = "lo"\n'
        f"{AUTHKEY}{groups}{plugin}"
    )
    path.chmod(0o600)
    return path


def diagnostics(path: Path) -> list[str]:
    loaded = load_config(path, node="prime", provided_agents=lambda c, n: {"AsteriskBindaddr"})
    host = PluginHost(load_entrypoints=False, plugins={"asterisk": pulse_asterisk})
    return [str(d) for d in host.configure(loaded.config, loaded.node)]


GROUP = (
    '[[groups]]\nnode = "prime"\n'
    'resources = ["198.51.100.100/24/lo", "AsteriskBindaddr::198.51.100.100::{confdir}"]\n'
)


def test_a_good_configuration_says_nothing(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        GROUP.format(confdir=tmp_path),
        '[plugins.asterisk]\nreload_command = ["asterisk", "-rx", "sip reload"]\n'
        'check_command = ["asterisk", "-rx", "sip show settings"]\ncheck_timeout = 15\n',
    )
    assert diagnostics(path) == []


def test_a_misspelt_key_is_reported_on_its_line_with_a_suggestion(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        GROUP.format(confdir=tmp_path),
        '[plugins.asterisk]\nreload_comand = ["asterisk"]\n',
    )
    line = path.read_text().splitlines().index('reload_comand = ["asterisk"]') + 1
    assert diagnostics(path) == [
        f"{path}:{line}: plugins.asterisk.reload_comand: unknown key (did you mean reload_command?)"
    ]


def test_times_are_durations_as_for_every_plugin(tmp_path: Path) -> None:
    # The shared rule (pulse.plugin.settings): a number of seconds or "30s", "500ms", ...
    from pulse_asterisk.settings import base_settings

    path = write_toml(
        tmp_path,
        GROUP.format(confdir=tmp_path),
        '[plugins.asterisk]\ntimeout = "30s"\ncheck_timeout = "1min"\ncheck_interval = "500ms"\n',
    )
    assert diagnostics(path) == []
    settings = base_settings(load_config(path, node="prime").config)
    assert (settings.timeout, settings.check_timeout, settings.check_interval) == (30, 60, 0.5)


def test_a_shell_string_as_command_is_refused_with_the_argv_form(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        GROUP.format(confdir=tmp_path),
        "[plugins.asterisk]\nreload_command = \"asterisk -rx 'core reload'\"\ntimeout = -1\n",
    )
    out = diagnostics(path)
    assert len(out) == 2
    assert "expected a list of arguments, got a string" in out[0]
    assert 'reload_command = ["asterisk", "-rx", "core reload"]' in out[0]
    assert "plugins.asterisk.timeout: expected a duration of more than 0 seconds" in out[1]


def test_a_bad_word_is_reported_at_its_haresources_line(tmp_path: Path) -> None:
    hr = tmp_path / "haresources"
    hr.write_text("# the VoIP pair\nnode01 198.51.100.100 AsteriskBindaddr::not-an-ip\n")
    hacf = tmp_path / "ha.cf"
    hacf.write_text("bcast lo\nnode node01\nnode node02\n")
    keys = tmp_path / "authkeys"
    keys.write_text("auth 1\n1 crc\n")
    keys.chmod(0o600)
    loaded = load_config(tmp_path, node="node01", provided_agents=lambda c, n: {"AsteriskBindaddr"})
    _, diags = load_plugins(
        loaded.config, loaded.node, load_entrypoints=False, plugins={"asterisk": pulse_asterisk}
    )
    assert [str(d) for d in diags] == [
        f"{hr}:2: AsteriskBindaddr: [not-an-ip] is not an IP address; write "
        "AsteriskBindaddr::198.51.100.100 or AsteriskBindaddr::198.51.100.100::/etc/asterisk"
    ]


def test_placement_before_the_address_and_a_later_asterisk_are_warned_about(
    tmp_path: Path,
) -> None:
    path = write_toml(
        tmp_path,
        '[[groups]]\nnode = "prime"\n'
        f'resources = ["AsteriskBindaddr::198.51.100.100::{tmp_path}", "198.51.100.100", '
        '"asterisk"]\n',
    )
    loaded = load_config(path, node="prime", provided_agents=lambda c, n: {"AsteriskBindaddr"})
    host = PluginHost(load_entrypoints=False, plugins={"asterisk": pulse_asterisk})
    diags = host.configure(loaded.config, loaded.node)
    assert [d.severity for d in diags] == [Severity.WARNING, Severity.WARNING]
    assert "no resource before it in the group adds 198.51.100.100" in diags[0].message
    assert "reload_required = false" in diags[1].message
    assert "::reload_required=no" in diags[1].message


def test_a_missing_confdir_is_a_warning_naming_the_fix(tmp_path: Path) -> None:
    path = write_toml(tmp_path, GROUP.format(confdir=tmp_path / "nosuch"))
    (warning,) = diagnostics(path)
    assert "does not exist on this machine" in warning
    assert "AsteriskBindaddr::VIP::/path/to/asterisk" in warning


def test_an_unused_table_is_a_warning(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "", "[plugins.asterisk]\nreload_required = false\n")
    (warning,) = diagnostics(path)
    assert "no resource group uses AsteriskBindaddr" in warning


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ((), "needs the floating IP address"),
        (("198.51.100.100", "etc/asterisk"), "is not an absolute directory"),
        (("198.51.100.100", "reload_required=maybe"), "expected yes or no"),
        (("198.51.100.100", "colour=blue"), "unknown option [colour]"),
    ],
)
def test_word_arguments_are_checked(args: tuple[str, ...], problem: str) -> None:
    from pulse_asterisk.settings import AsteriskSettings, binding_from_args

    binding, problems = binding_from_args(args, AsteriskSettings())
    assert binding is None
    assert any(problem in p for p in problems)


def test_the_word_overrides_the_table() -> None:
    from pulse_asterisk.settings import binding_from_args, settings_from_table

    table = {"confdir": "/srv/asterisk", "reload_required": True}
    base, diags = settings_from_table(SettingsReader(table, plugin="asterisk", file="pulse.toml"))
    assert diags == []
    binding, _ = binding_from_args(
        ("2001:db8::10", "/opt/asterisk/etc", "reload_required=no", "files=sip.conf,iax.conf"),
        base,
    )
    assert binding is not None
    assert binding.vip == "2001:db8::10"
    assert binding.settings.confdir == "/opt/asterisk/etc"
    assert binding.settings.reload_required is False
    assert binding.settings.files == ("sip.conf", "iax.conf")
    assert binding.settings.files_explicit


def test_the_distribution_registers_the_asterisk_entry_point() -> None:
    eps = importlib.metadata.entry_points(group="pulse")
    assert any(ep.name == "asterisk" and ep.value == "pulse_asterisk" for ep in eps)
    host = PluginHost(load_entrypoints=True)
    assert any(p.name == "asterisk" for p in host.plugins())
    assert "AsteriskBindaddr" in pulse_asterisk.pulse_register_resource_agents()
