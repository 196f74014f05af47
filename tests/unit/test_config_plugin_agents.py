from __future__ import annotations

from pathlib import Path

import pytest

from pulse.config import load_config
from pulse.config.model import Config
from pulse.errors import ConfigError
from pulse.plugin.host import plugin_agent_names

HACF = "keepalive 1\ndeadtime 10\nbcast lo\nauto_failback off\nnode node01\nnode node02\n"


def _write(tmp_path: Path, haresources: str) -> Path:
    (tmp_path / "ha.cf").write_text(HACF)
    (tmp_path / "authkeys").write_text("auth 1\n1 sha1 secret\n")
    (tmp_path / "authkeys").chmod(0o600)
    (tmp_path / "haresources").write_text(haresources)
    return tmp_path


def test_strict_host_refuses_a_resource_name_nothing_provides(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot locate resource script \[PluginAgent\]"):
        load_config(_write(tmp_path, "node01 PluginAgent 198.51.100.100\n"), strict_host=True)


def test_resource_names_provided_by_plugins_are_not_looked_for_as_scripts(tmp_path: Path) -> None:
    seen: list[tuple[tuple[str, ...], str]] = []

    def provided(config: Config, node: str) -> set[str]:
        seen.append((config.nodes, node))
        return {"PluginAgent"}

    loaded = load_config(
        _write(tmp_path, "node01 PluginAgent::k=v 198.51.100.100\n"),
        node="node01",
        strict_host=True,
        provided_agents=provided,
    )
    assert loaded.warnings == ()
    assert seen == [(("node01", "node02"), "node01")]


def test_plugin_agent_names_is_empty_when_plugins_cannot_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(_write(tmp_path, ""), node="node01").config

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("entry point does not import")

    monkeypatch.setattr("pulse.plugin.host.PluginHost.for_config", broken)
    assert plugin_agent_names(config, "node01") == set()
