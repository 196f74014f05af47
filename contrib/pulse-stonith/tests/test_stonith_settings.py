"""Reading ha.cf stonith lines and [plugins.stonith] into devices and diagnostics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from pulse_stonith.checks import Answer, Query, host_checks
from pulse_stonith.settings import (
    AgentDeviceSpec,
    GlueDeviceSpec,
    Settings,
    applicable_directive,
    read_settings,
)

from pulse.config.model import AuthKey, AuthKeys, AuthMethod, Config, Source, StonithDirective
from pulse.config.toml import key_lines
from pulse.errors import Severity


def config(
    *,
    stonith: Sequence[StonithDirective] = (),
    plugin: Mapping[str, object] | None = None,
    origin: str = "/etc/ha.d",
    toml_text: str = "",
) -> Config:
    key = AuthKey(index=1, method=AuthMethod.CRC, key=None)
    return Config(
        nodes=("prime", "calc"),
        media=(),
        auth=AuthKeys(outbound=1, keys=(key,)),
        stonith=tuple(stonith),
        plugins={"stonith": plugin} if plugin is not None else {},
        origin=origin,
        key_lines=key_lines(toml_text),  # what the TOML loader records
    )


def host_line(host: str, typ: str, params: str, line: int) -> StonithDirective:
    return StonithDirective(
        type=typ, params=params, host=host, source=Source("/etc/ha.d/ha.cf", line)
    )


def test_stonith_host_lines_for_another_node_are_ignored() -> None:
    lines = [host_line("prime", "null", "calc", 10)]
    assert applicable_directive(lines, "calc") == (None, [])
    settings, diags = read_settings(config(stonith=lines), "calc")
    assert settings.devices == () and diags == []


def test_the_last_applicable_stonith_line_wins_and_the_others_are_warned_about() -> None:
    lines = [
        host_line("*", "null", "prime calc", 10),
        host_line("prime", "ssh", "calc", 11),
        host_line("calc", "external/ssh", "prime", 12),
    ]
    settings, diags = read_settings(config(stonith=lines), "calc")
    (device,) = settings.devices
    assert isinstance(device, GlueDeviceSpec)
    assert (device.type, device.params, device.action) == ("external/ssh", "prime", "reboot")
    assert device.where == Source("/etc/ha.d/ha.cf", 12)
    assert [(d.line, d.severity) for d in diags] == [(10, Severity.WARNING)]
    assert "/etc/ha.d/ha.cf:12" in diags[0].message


def test_stonith_type_file_uses_the_parameters_read_from_the_file() -> None:
    line = StonithDirective(
        type="external/ipmi",
        params="prime 10.0.0.5 623 admin secret lanplus",
        params_file="/etc/ha.d/ipmi.cfg",
        source=Source("/etc/ha.d/ha.cf", 7),
    )
    settings, _ = read_settings(config(stonith=[line]), "calc")
    assert settings.devices[0] == GlueDeviceSpec(
        name="stonith:external/ipmi",
        type="external/ipmi",
        params="prime 10.0.0.5 623 admin secret lanplus",
        where=Source("/etc/ha.d/ha.cf", 7),
    )


TOML = """\
[cluster]
nodes = ["prime", "calc"]

[plugins.stonith]
action = "off"
timeout = 20
require_fencing = true

[[plugins.stonith.devices]]
kind = "cluster-glue"
type = "null"
params = "prime calc"

[[plugins.stonith.devices]]
kind = "fence-agent"
agent = "fence_ipmilan"
hosts = ["Prime"]
timeout = 9
host_map = { prime = "bmc-prime" }
options = { ip = "10.0.0.5", username = "admin", password = "secret", lanplus = true }
"""


def test_plugin_table_describes_policy_and_devices_in_order() -> None:
    plugin = {
        "action": "off",
        "timeout": 20,
        "require_fencing": True,
        "devices": [
            {"kind": "cluster-glue", "type": "null", "params": "prime calc"},
            {
                "kind": "fence-agent",
                "agent": "fence_ipmilan",
                "hosts": ["Prime"],
                "timeout": 9,
                "host_map": {"prime": "bmc-prime"},
                "options": {"ip": "10.0.0.5", "username": "admin", "lanplus": True},
            },
        ],
    }
    settings, diags = read_settings(config(plugin=plugin, toml_text=TOML), "calc")
    assert diags == []
    assert (settings.action, settings.timeout, settings.require_fencing) == ("off", 20.0, True)
    glue, agent = settings.devices
    assert glue == GlueDeviceSpec(
        name="null#1",
        type="null",
        params="prime calc",
        action="off",
        timeout=20.0,
        where=Source("/etc/ha.d", 9),
    )
    assert isinstance(agent, AgentDeviceSpec)
    assert agent.hosts == ("prime",) and agent.timeout == 9.0 and agent.action == "off"
    assert agent.options == (("ip", "10.0.0.5"), ("username", "admin"), ("lanplus", "1"))
    assert agent.plug_for("prime") == "bmc-prime" and agent.plug_for("calc") == "calc"
    assert agent.where.line == 14


@pytest.mark.parametrize(
    ("plugin", "line", "words"),
    [
        ({"action": "poweroff"}, 5, 'action: expected one of "reboot", "off"'),
        ({"timeout": 0}, 6, "timeout: expected a duration of more than 0 seconds"),
        ({"require_fencing": "yes"}, 7, "require_fencing: expected true or false"),
        ({"colour": 1}, 4, "plugins.stonith.colour: unknown key; known: action"),
        ({"devices": [{"kind": "ipmi"}]}, 10, 'kind: expected "cluster-glue"'),
        ({"devices": [{"kind": "cluster-glue"}]}, 11, "type: required (e.g. type ="),
        ({"devices": [{"kind": "cluster-glue", "type": "null", "hosts": []}]}, 9, "hosts"),
        (
            {"devices": [{"kind": "fence-agent", "agent": "fence_x", "hostz": 1}]},
            9,
            "devices[0].hostz: unknown key (did you mean hosts?)",
        ),
        (
            {"devices": [{"kind": "fence-agent", "agent": "f", "options": {"action": "on"}}]},
            9,
            "options.action: options must not set it",
        ),
        (
            {"devices": [{"kind": "fence-agent", "agent": "f", "options": {"plug": "x"}}]},
            9,
            "options.plug: options must not set it",
        ),
        (
            {"devices": [{"kind": "fence-agent", "agent": "f", "options": {"ip": "a\nplug=b"}}]},
            9,
            "must be a single line",
        ),
        (
            {
                "devices": [
                    {"kind": "cluster-glue", "type": "null", "name": "x"},
                    {"kind": "fence-agent", "agent": "f", "name": "x"},
                ]
            },
            14,
            "devices[1].name: 'x' is used twice",
        ),
    ],
)
def test_a_bad_plugin_table_is_an_error_at_its_line_with_a_hint(
    plugin: Mapping[str, object], line: int, words: str
) -> None:
    # The lines are those of TOML above (the plugin tables differ from it on purpose): a
    # diagnostic points at its key's line, else at its [[devices]] element or the table.
    cfg = config(plugin=plugin, origin="pulse.toml", toml_text=TOML)
    _, diags = read_settings(cfg, "calc")
    errors = [d for d in diags if d.severity is Severity.ERROR]
    assert len(errors) == 1, diags
    assert (errors[0].file, errors[0].line) == ("pulse.toml", line)
    assert words in errors[0].message


def test_times_are_durations_as_for_every_plugin() -> None:
    # The shared rule (pulse.plugin.settings): seconds, or "30s", "500ms", "5min".
    plugin = {
        "timeout": "30s",
        "host_list_ttl": "1h",
        "devices": [{"kind": "cluster-glue", "type": "null", "timeout": "1500ms"}],
    }
    settings, diags = read_settings(config(plugin=plugin), "calc")
    assert diags == []
    assert (settings.timeout, settings.host_list_ttl) == (30.0, 3600.0)
    assert settings.devices[0].timeout == 1.5


def fake_query(types: Sequence[str], names: Mapping[str, str]) -> Query:
    def query(argv: Sequence[str]) -> Answer:
        if argv[-1] == "-L":
            return Answer(ok=True, lines=tuple(types))
        return Answer(ok=True, lines=(names[argv[2]],))

    return query


def glue(typ: str, params: str, line: int = 5) -> GlueDeviceSpec:
    return GlueDeviceSpec(name=typ, type=typ, params=params, where=Source("ha.cf", line))


def test_host_checks_report_an_unknown_type_and_too_few_parameters() -> None:
    settings = Settings(
        devices=(
            glue("external/ipmy", "a", 3),
            glue("external/ipmi", "prime 10.0.0.5", 4),
            glue("null", "prime calc", 5),
        )
    )
    query = fake_query(
        ["null", "external/ipmi", "ipmilan"],
        {"null": "hostlist  ", "external/ipmi": "hostname  ipaddr  userid  passwd  interface  "},
    )
    diags = host_checks(settings, query=query)
    assert [(d.line, d.message) for d in diags] == [
        (3, "stonith: unknown device type external/ipmy; `stonith -L` lists them"),
        (
            4,
            "stonith: external/ipmi needs 5 parameter(s) in this order: "
            "hostname ipaddr userid passwd interface; got 2",
        ),
    ]


def test_host_checks_say_how_to_install_cluster_glue_when_it_is_missing() -> None:
    settings = Settings(devices=(glue("null", "prime", 8),))
    diags = host_checks(settings, query=lambda argv: Answer(ok=False, problem="missing"))
    assert [(d.line, d.message) for d in diags] == [
        (
            8,
            "STONITH is configured but cluster-glue's /usr/sbin/stonith is not installed "
            "(apt-get install cluster-glue)",
        )
    ]


def test_host_checks_report_a_fence_agent_that_is_not_installed() -> None:
    spec = AgentDeviceSpec(name="a", agent="fence_nothere", where=Source("pulse.toml", 12))
    diags = host_checks(Settings(devices=(spec,)), locate=lambda agent: None)
    assert [(d.file, d.line) for d in diags] == [("pulse.toml", 12)]
    assert "fence agent fence_nothere not found" in diags[0].message
