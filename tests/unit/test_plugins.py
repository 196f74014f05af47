"""The plugin host: loading, disabling, typed hook calls, and the two meta-tests
(every hook is documented in docs/plugins/hooks.md and has a test_hook_<name>)."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import pluggy
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulse import hookimpl, metrics
from pulse.config import load_config
from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    ResourceSpec,
)
from pulse.errors import Diagnostic, Severity
from pulse.plugin import PluginContext
from pulse.plugin import api as hookspecs
from pulse.plugin.api import Metric
from pulse.plugin.host import (
    PluginError,
    PluginHost,
    disabled_from,
    load_plugins,
    unknown_plugin_tables,
)
from pulse.resources import MonitorState, ResourceError, make_agent, monitor_agent

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


class Replica:
    """A plugin agent with the optional monitor: its replication is broken."""

    def __init__(self, spec: ResourceSpec) -> None:
        self.spec = spec

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def status(self) -> bool:
        return True

    async def monitor(self, timeout: float) -> bool:
        raise ResourceError(self.spec.raw, "replication is broken: SQL error 1062")


class MonitoredAgents:
    @hookimpl
    def pulse_register_resource_agents(self) -> Mapping[str, Any]:
        return {"Replica": lambda spec, config: Replica(spec)}


async def test_hook_pulse_register_resource_agents_monitor_reports_a_failure() -> None:
    host = PluginHost(load_entrypoints=False, plugins={"replica": MonitoredAgents()})
    registry = host.resource_agents(CONFIG, "prime")
    agent = make_agent(ResourceSpec(raw="Replica", agent="Replica"), CONFIG, registry=registry)
    result = await monitor_agent(agent, timeout=5)
    assert (result.state, result.resource) == (MonitorState.FAILED, "Replica")
    assert result.reason == "replication is broken: SQL error 1062"


def test_two_plugins_registering_one_agent_name_is_an_error() -> None:
    host = PluginHost(load_entrypoints=False, plugins={"a": Agents(), "b": Agents()})
    # pluggy calls the plugin registered last first: b's name is taken, then a clashes.
    with pytest.raises(PluginError, match="registered by both b and a"):
        host.resource_agents(CONFIG, "prime")


class Named:
    """Registers one listener: its own name (so the merged list shows the call order)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def pulse_register_event_listeners(self) -> list[str]:
        return [self.name]


class First(Named):
    @hookimpl(tryfirst=True)
    def pulse_register_event_listeners(self) -> list[str]:
        return [self.name]


class Last(Named):
    @hookimpl(trylast=True)
    def pulse_register_event_listeners(self) -> list[str]:
        return [self.name]


def registered() -> dict[str, object]:
    return {"last": Last("last"), "a": Named("a"), "first": First("first"), "b": Named("b")}


def test_implementations_run_in_pluggys_order_tryfirst_and_trylast_included() -> None:
    host = PluginHost(load_entrypoints=False, plugins=registered())
    # The same plugins on a bare pluggy manager: the order pluggy itself gives.
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, plugin in registered().items():
        pm.register(plugin, name=name)
    by_pluggy = [
        n
        for r in pm.hook.pulse_register_event_listeners(config=CONFIG, node="prime", context=None)
        for n in r
    ]
    listeners: list[object] = list(host.event_listeners(CONFIG, "prime"))
    assert listeners == by_pluggy == ["first", "b", "a", "last"]


class Wrapper:
    def __init__(self) -> None:
        self.seen: list[object] = []

    @hookimpl(wrapper=True)
    def pulse_register_event_listeners(self) -> Generator[None, list[list[str]], list[list[str]]]:
        inner = yield
        self.seen = [n for r in inner for n in r]
        return [*inner, ["added by the wrapper"]]


class OldStyleWrapper:
    @hookimpl(hookwrapper=True)
    def pulse_register_event_listeners(
        self,
    ) -> Generator[None, pluggy.Result[list[list[str]]], None]:
        outcome = yield
        outcome.force_result([["replaced"], *outcome.get_result()])


def test_a_wrapper_implementation_runs_around_the_others() -> None:
    wrapper = Wrapper()
    host = PluginHost(load_entrypoints=False, plugins={"a": Named("a"), "wrap": wrapper})
    listeners: list[object] = list(host.event_listeners(CONFIG, "prime"))
    assert wrapper.seen == ["a"]
    assert listeners == ["a", "added by the wrapper"]


def test_an_old_style_hookwrapper_runs_around_the_others() -> None:
    plugins = {"old": OldStyleWrapper(), "a": Named("a")}
    host = PluginHost(load_entrypoints=False, plugins=plugins)
    listeners: list[object] = list(host.event_listeners(CONFIG, "prime"))
    assert listeners == ["replaced", "a"]


class RaisesInRegistration:
    @hookimpl
    def pulse_register_event_listeners(self) -> list[object]:
        raise ValueError("no such queue")


def test_a_plugin_that_raises_among_others_is_named() -> None:
    plugins = {"a": Named("a"), "bad": RaisesInRegistration(), "b": Named("b")}
    host = PluginHost(load_entrypoints=False, plugins=plugins)
    with pytest.raises(PluginError, match="plugin bad: pulse_register_event_listeners failed"):
        host.event_listeners(CONFIG, "prime")
    assert host.failures == {
        "bad": "pulse_register_event_listeners raised ValueError: no such queue"
    }


def test_a_plugin_failing_inside_a_wrapper_is_named_not_the_wrapper() -> None:
    plugins = {"bad": RaisesInRegistration(), "wrap": Wrapper()}
    host = PluginHost(load_entrypoints=False, plugins=plugins)
    with pytest.raises(PluginError, match="plugin bad: "):
        host.event_listeners(CONFIG, "prime")


def test_trace_hooks_logs_every_hook_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PULSE_TRACE_HOOKS", "1")
    host = PluginHost(load_entrypoints=False, plugins={"a": Named("a"), "first": First("first")})
    with caplog.at_level(logging.DEBUG, logger="pulse.plugin.host"):
        host.configure(CONFIG, "prime")
        host.resource_agents(CONFIG, "prime")
        host.takeover_checks(CONFIG, "prime")
        host.event_listeners(CONFIG, "prime")
        host.fencing_devices(CONFIG, "prime")
    calls = [r.getMessage() for r in caplog.records if ": calling " in r.getMessage()]
    assert calls == [
        "hook pulse_configure: calling no implementation",
        "hook pulse_register_resource_agents: calling no implementation",
        "hook pulse_register_takeover_checks: calling no implementation",
        "hook pulse_register_event_listeners: calling first, a",
        "hook pulse_register_fencing_devices: calling no implementation",
    ]
    assert "hook pulse_register_event_listeners: 2 result(s)" in caplog.messages


def test_without_trace_hooks_nothing_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PULSE_TRACE_HOOKS", raising=False)
    host = PluginHost(load_entrypoints=False, plugins={"a": Named("a")})
    with caplog.at_level(logging.DEBUG, logger="pulse.plugin.host"):
        host.event_listeners(CONFIG, "prime")
    assert caplog.messages == []


class Stateful:
    """Counts its calls in the per-daemon state and shares one object between hooks."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.contexts: list[PluginContext] = []

    @hookimpl
    def pulse_configure(self, context: PluginContext) -> None:
        self.contexts.append(context)
        context.state[self.key] = "configured"

    @hookimpl
    def pulse_register_event_listeners(self, context: PluginContext) -> list[object]:
        self.contexts.append(context)
        return [context.once("shared", object)]


def test_hook_context_state_lives_as_long_as_the_daemon_and_is_the_plugins_own() -> None:
    one, two = Stateful("k"), Stateful("k")
    host = PluginHost(load_entrypoints=False, plugins={"one": one, "two": two})
    host.configure(CONFIG, "prime")
    first = host.event_listeners(CONFIG, "prime")
    again = host.event_listeners(CONFIG, "prime")
    assert first == again  # the same objects: one per daemon and plugin
    assert first[0] is not first[1]  # ... not shared between the plugins
    assert [c.plugin for c in one.contexts] == ["one"] * 3
    assert all(c.config is CONFIG and c.node == "prime" for c in one.contexts)
    assert one.contexts[0].state == {"k": "configured", "shared": again[1]}
    other_daemon = PluginHost(load_entrypoints=False, plugins={"one": one, "two": two})
    assert other_daemon.event_listeners(CONFIG, "prime")[0] is not first[0]


class Counting:
    """A plugin whose listener counts events; its metrics read the listener's count."""

    @hookimpl
    def pulse_register_event_listeners(self, context: PluginContext) -> list[object]:
        return [context.once("counter", lambda: {"events": 0})]

    @hookimpl
    def pulse_collect_metrics(self, context: PluginContext) -> list[object]:
        counter = context.state.get("counter")
        events = counter["events"] if isinstance(counter, dict) else -1
        return [
            Metric(
                name="pulse_my_plugin_events_total",
                kind="counter",
                help="Events seen.",
                samples=(({"node": context.node}, events),),
            ),
            Metric(name="pulse_my_plugin_up", kind="gauge", help="Up.", samples=(({}, 1),)),
            Metric(name="pulse_other_thing", kind="gauge", help="Not ours."),
            Metric(name="pulse_my_plugin_errors", kind="counter", help="No _total."),
            Metric(name="pulse_my_plugin_x", kind="gauge", help="?", samples=(({"a-b": ""}, 1),)),
            "not a metric",
        ]


STATUS: dict[str, Any] = {
    "version": "1",
    "node": "prime",
    "cluster": {"local_status": "active", "nodes": [], "counters": {}},
}
READINGS = metrics.ProcessReadings(
    cpu_seconds=1.0, resident_bytes=1, virtual_bytes=1, open_fds=1, start_time=0.0
)


def test_hook_pulse_collect_metrics_adds_a_plugins_families_and_leaves_out_bad_ones() -> None:
    host = PluginHost(load_entrypoints=False, plugins={"my-plugin": Counting()})
    assert host.metrics() == ([], [])  # no daemon yet: no context, no hook call
    [listener] = host.event_listeners(CONFIG, "prime")  # start-up
    listener["events"] = 3
    families, problems = host.metrics()
    assert problems == ["plugin my-plugin: not a Metric: 'not a metric'"]
    text = metrics.render(STATUS, READINGS, families, problems)
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    # The counter read the state the listener lives in (the same context).
    [sample] = parsed["pulse_my_plugin_events"].samples
    assert (sample.labels, sample.value) == ({"node": "prime"}, 3)
    assert parsed["pulse_my_plugin_up"].type == "gauge"
    assert "pulse_other_thing" not in parsed and "pulse_my_plugin_errors" not in parsed
    assert "pulse_info" in parsed  # pulse's own families are all still there
    comments = [line for line in text.splitlines() if line.startswith("# pulse:")]
    assert comments == [
        "# pulse: plugin my-plugin: pulse_other_thing does not start with pulse_my_plugin_; "
        "left out",
        "# pulse: plugin my-plugin: pulse_my_plugin_errors: a counter's name ends in _total; "
        "left out",
        "# pulse: plugin my-plugin: pulse_my_plugin_x: 'a-b' is not a label name; left out",
        "# pulse: plugin my-plugin: not a Metric: 'not a metric'",
    ]


def test_a_plugin_metric_cannot_replace_one_of_pulses_own_families() -> None:
    clash = Metric(name="pulse_link_up", kind="gauge", help="x", samples=(({}, 1),))
    text = metrics.render(STATUS, READINGS, [("link", clash)])
    assert text.count("# TYPE pulse_link_up ") == 1
    assert "# pulse: plugin link: pulse_link_up is already written; left out" in text


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


def test_a_misspelt_plugin_table_is_an_error_with_a_suggestion_and_an_unknown_one_a_warning(
    tmp_path: Path,
) -> None:
    text = (
        '[cluster]\nnodes = ["alpha", "beta"]\nauto_failback = "on"\n'
        '[[links]]\ntype = "bcast"\ninterface = "lo"\n'
        '[auth]\nuse = 1\nkeys = [{index = 1, method = "crc"}]\n'
        '[plugins.mialto]\nto = ["ops@example.com"]\n'
        "[plugins.pagerduty]\nkey = 1\n"
    )
    path = tmp_path / "pulse.toml"
    path.write_text(text)
    path.chmod(0o600)
    config = load_config(path, node="alpha").config

    class Mail:
        pass

    host = PluginHost(load_entrypoints=False, plugins={"mailto": Mail()})
    diags = unknown_plugin_tables(config, host)
    assert [str(d) for d in diags] == [
        f"{path}:10: plugins.mialto: no plugin is called mialto (did you mean mailto?); "
        "installed: mailto",
        f"{path}:12: warning: plugins.pagerduty: no plugin called pagerduty is installed, "
        "so this table is ignored (installed: mailto)",
    ]


class Raising:
    @hookimpl
    def pulse_collect_metrics(self) -> None:
        raise RuntimeError("lost my figures")


def test_a_plugin_whose_metrics_hook_raises_costs_the_scrape_only_the_plugins_families() -> None:
    host = PluginHost(load_entrypoints=False, plugins={"bad": Raising()})
    host.configure(CONFIG, "prime")
    families, problems = host.metrics()
    text = metrics.render(STATUS, READINGS, families, problems)
    assert families == [] and "pulse_info" in text
    assert "# pulse: plugin bad: pulse_collect_metrics failed: lost my figures" in text
