"""The plugin host: loading, disabling, typed hook calls, and the two meta-tests
(every hook is documented in docs/plugins/hooks.md and has a test_hook_<name>)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pulse import hookimpl, hookspecs
from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    ResourceSpec,
)
from pulse.errors import Diagnostic, Severity
from pulse.plugins import PluginError, PluginHost, disabled_from, load_plugins
from pulse.resources import make_agent

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Config(
    nodes=("prime", "calc"),
    media=(BcastMedium(interface="eth0"),),
    auth=AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),)),
    plugins={"demo": {"to": "ops@example.com", "retries": "three"}},
    origin="/etc/pulse/pulse.toml",
)
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("pulse_"))


class Validating:
    @hookimpl
    def pulse_configure(self, config: Config) -> list[Diagnostic]:
        table = config.plugins.get("demo", {})
        if not isinstance(table.get("retries"), int):
            return [Diagnostic(config.origin, 14, "plugins.demo.retries: expected a number")]
        return []


class Agents:
    def __init__(self, name: str = "Flag") -> None:
        self.name = name

    @hookimpl
    def pulse_register_resource_agents(self) -> Mapping[str, Any]:
        return {self.name: lambda spec, config: ("agent for", spec.raw)}


class Broken:
    @hookimpl
    def pulse_configure(self) -> None:
        raise RuntimeError("boom")


def test_hook_pulse_configure_returns_the_plugins_diagnostics() -> None:
    host = PluginHost(load_entrypoints=False, plugins={"demo": Validating()})
    diags = host.configure(CONFIG, "prime")
    assert [str(d) for d in diags] == [
        "/etc/pulse/pulse.toml:14: plugins.demo.retries: expected a number"
    ]
    assert diags[0].severity is Severity.ERROR


def test_a_plugin_that_raises_becomes_a_diagnostic_naming_it() -> None:
    host = PluginHost(load_entrypoints=False, plugins={"broken": Broken()})
    [diag] = host.configure(CONFIG, "prime")
    assert "plugin broken: pulse_configure failed: boom" in diag.message
    assert host.failures["broken"].startswith("pulse_configure raised RuntimeError")


def test_hook_pulse_register_resource_agents_feeds_haresources_words() -> None:
    host = PluginHost(load_entrypoints=False, plugins={"flags": Agents()})
    registry = host.resource_agents(CONFIG, "prime")
    spec = ResourceSpec(raw="Flag::/tmp/x", agent="Flag", args=("/tmp/x",))
    assert make_agent(spec, CONFIG, registry=registry) == ("agent for", "Flag::/tmp/x")  # type: ignore[comparison-overlap]


def test_two_plugins_registering_one_agent_name_is_an_error() -> None:
    host = PluginHost(load_entrypoints=False, plugins={"a": Agents(), "b": Agents()})
    with pytest.raises(PluginError, match="registered by both a and b"):
        host.resource_agents(CONFIG, "prime")


def test_plugins_are_disabled_by_name_from_config_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import replace

    monkeypatch.setenv("PULSE_DISABLE_PLUGINS", "b, c")
    config = replace(CONFIG, disabled_plugins=("a",))
    assert disabled_from(config) == {"a", "b", "c"}
    host = PluginHost.for_config(
        config, load_entrypoints=False, plugins={"a": Agents("A"), "d": Agents("D")}
    )
    assert [p.name for p in host.plugins()] == ["d"]
    assert host.blocked == ["a", "b", "c"]


def test_load_plugins_reports_an_unimportable_plugin_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(self: object, group: str) -> int:
        raise ImportError("No module named 'pulse_missing'")

    monkeypatch.setattr("pluggy.PluginManager.load_setuptools_entrypoints", explode)
    host, diags = load_plugins(CONFIG, "prime")
    assert host is None
    assert [str(d) for d in diags] == [
        "/etc/pulse/pulse.toml: cannot load plugins: No module named 'pulse_missing'"
    ]


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    doc = (ROOT / "docs" / "plugins" / "hooks.md").read_text()
    for name in HOOKS:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        heading = f"## `{name}({params})`"
        assert heading in doc, f"docs/plugins/hooks.md lacks the heading {heading}"


def test_every_hook_has_a_test_named_after_it() -> None:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names |= set(re.findall(r"def (test_hook_\w+)", path.read_text()))
    for hook in HOOKS:
        assert any(n.startswith(f"test_hook_{hook}") for n in names), f"no test_hook_{hook}*"
