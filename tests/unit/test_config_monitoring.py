"""Monitoring and recovery keys of a group (docs/configuration.md, docs/resources.md#monitoring)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from config_support import LEGACY, install, messages

from pulse.config import checks, load_config
from pulse.config.convert import MONITOR_HINT, to_toml
from pulse.config.model import MonitorOptions, OnFail, ResourceGroup, ResourceSpec
from pulse.errors import ConfigError

HEAD = """\
[cluster]
nodes = ["alpha", "beta"]
auto_failback = "on"

[[links]]
type = "bcast"
interface = "lo"

[auth]
use = 1
keys = [{index = 1, method = "sha1", key = "k"}]

[[groups]]
node = "alpha"
"""
# A group's text starts on line 15: resources there, other keys on line 16.


def load(tmp_path: Path, group: str) -> ResourceGroup:
    path = tmp_path / "pulse.toml"
    path.write_text(HEAD + group)
    path.chmod(0o600)
    (only,) = load_config(path, node="alpha").config.groups
    return only


def errors(tmp_path: Path, group: str) -> list[str]:
    path = tmp_path / "pulse.toml"
    path.write_text(HEAD + group)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_config(path, node="alpha")
    return messages(info.value, tmp_path)


def test_a_group_without_monitor_keys_watches_nothing(tmp_path: Path) -> None:
    group = load(tmp_path, 'resources = ["198.51.100.10/24/lo", "apache2"]\n')
    assert group.monitor is None
    assert not group.monitored
    assert (group.on_fail, group.migration_threshold, group.failure_timeout) == (
        OnFail.RESTART,
        3,
        None,
    )


def test_group_monitor_keys_apply_to_every_resource(tmp_path: Path) -> None:
    group = load(
        tmp_path,
        'resources = ["198.51.100.10/24/lo", "apache2"]\n'
        'monitor = { interval = "5s", timeout = "20s" }\n'
        'on_fail = "failover"\nmigration_threshold = 2\nfailure_timeout = "10m"\n',
    )
    assert group.monitor == MonitorOptions(interval=5000, timeout=20000)
    assert [group.monitor_of(r) for r in group.resources] == [group.monitor] * 2
    assert [group.on_fail_of(r) for r in group.resources] == [OnFail.FAILOVER] * 2
    assert (group.migration_threshold, group.failure_timeout) == (2, 600000)


def test_a_resource_table_overrides_its_groups_monitor_and_on_fail(tmp_path: Path) -> None:
    group = load(
        tmp_path,
        'resources = ["198.51.100.10/24/lo",\n'
        '  { name = "apache2", monitor = { interval = "2s", timeout = 10 }, on_fail = "ignore" }]\n'
        'monitor = { interval = "5s" }\n',
    )
    vip, web = group.resources
    assert (web.raw, web.agent) == ("apache2", "apache2")
    assert group.monitor_of(vip) == MonitorOptions(interval=5000, timeout=20000)
    assert group.monitor_of(web) == MonitorOptions(interval=2000, timeout=10000)
    assert (group.on_fail_of(vip), group.on_fail_of(web)) == (OnFail.RESTART, OnFail.IGNORE)
    assert group.key == "198.51.100.10/24/lo"


def test_one_monitored_resource_makes_the_group_monitored(tmp_path: Path) -> None:
    group = load(
        tmp_path,
        'resources = ["198.51.100.10/24/lo", { name = "web", monitor = { interval = 1 } }]\n',
    )
    assert group.monitored
    assert [group.monitor_of(r) is not None for r in group.resources] == [False, True]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            'monitor = { interval = "0s" }',
            "pulse.toml:16: groups[0].monitor.interval: must be more than 0; "
            'write e.g. interval = "5s"',
        ),
        (
            'monitor = { interval = "5s", timeout = 0 }',
            "pulse.toml:16: groups[0].monitor.timeout: must be more than 0; "
            'write e.g. timeout = "20s"',
        ),
        (
            'monitor = { interval = "5s", timeout = "-1s" }',
            'pulse.toml:16: groups[0].monitor.timeout: expected a duration ("5s", "500ms" or '
            "seconds), got string '-1s'",
        ),
        (
            'monitor = { timeout = "5s" }',
            'pulse.toml:16: groups[0].monitor: needs interval, e.g. monitor = { interval = "5s", '
            'timeout = "20s" }',
        ),
        (
            'monitor = { interval = "5s", timout = "1s" }',
            "pulse.toml:16: groups[0].monitor.timout: unknown key (did you mean timeout?)",
        ),
        (
            "migration_threshold = 0",
            "pulse.toml:16: groups[0].migration_threshold: must be 1 or more (1 moves the group "
            "at its first failure), got 0",
        ),
        (
            'on_fail = "restrat"',
            "pulse.toml:16: groups[0].on_fail: unknown value [restrat]; use restart, failover or "
            "ignore (did you mean restart?)",
        ),
        (
            'on_fail = "reboot"',
            "pulse.toml:16: groups[0].on_fail: unknown value [reboot]; use restart, failover or "
            "ignore",
        ),
        (
            'failure_timeout = "0s"',
            "pulse.toml:16: groups[0].failure_timeout: must be more than 0; write e.g. "
            'failure_timeout = "10m"',
        ),
    ],
)
def test_pulse_check_refuses_bad_monitoring_values_with_file_and_line(
    tmp_path: Path, keys: str, message: str
) -> None:
    assert errors(tmp_path, f'resources = ["apache2"]\n{keys}\n') == [message]


def test_bad_values_in_a_resource_table_name_the_entry(tmp_path: Path) -> None:
    assert errors(
        tmp_path,
        'resources = [{ name = "apache2", on_fail = "stop" }, { monitor = { interval = "1s" } }]\n',
    ) == [
        "pulse.toml:15: groups[0].resources[0].on_fail: unknown value [stop]; use restart, "
        "failover or ignore",
        "pulse.toml:15: groups[0].resources[1]: a resource table needs name, e.g. { name = "
        '"apache2", monitor = { interval = "5s", timeout = "20s" } }',
    ]


def test_pulse_check_exits_1_with_the_line_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "pulse.toml"
    path.write_text(HEAD + 'resources = ["apache2"]\nmonitor = { interval = 0 }\n')
    path.chmod(0o600)
    r = subprocess.run(
        [sys.executable, "-m", "pulse", "check", "-c", str(path), "--node", "alpha"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert f"{path}:16: groups[0].monitor.interval: must be more than 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_monitoring_keys_round_trip_through_convert(tmp_path: Path) -> None:
    group = load(
        tmp_path,
        'resources = ["198.51.100.10/24/lo",\n'
        '  { name = "apache2", monitor = { interval = "2s", timeout = "1500ms" } },\n'
        '  { name = "mysql", on_fail = "failover" }]\n'
        'monitor = { interval = "5s", timeout = "20s" }\n'
        'on_fail = "ignore"\nmigration_threshold = 1\nfailure_timeout = "90s"\n',
    )
    config = load_config(tmp_path / "pulse.toml", node="alpha").config
    again = tmp_path / "again.toml"
    again.write_text(to_toml(config))
    again.chmod(0o600)
    (reloaded,) = load_config(again, node="alpha").config.groups
    assert unsourced(reloaded) == unsourced(group)


def unsourced(group: ResourceGroup) -> ResourceGroup:
    """The group without the file and line of its parts (they differ between two files)."""
    specs = tuple(dataclasses.replace(r, source=None) for r in group.resources)
    return dataclasses.replace(group, resources=specs, source=None)


def test_converting_heartbeat_files_writes_the_monitor_keys_commented(tmp_path: Path) -> None:
    d = install(LEGACY / "000-prime-calc-apache", tmp_path)
    loaded = load_config(d, node="prime").config
    assert all(g.monitor is None for g in loaded.groups)  # Heartbeat's behaviour
    text = to_toml(loaded)
    for line in MONITOR_HINT:
        assert line in text.splitlines()
    uncommented = "\n".join(line.removeprefix("# ") for line in text.splitlines())
    doc = tomllib.loads(uncommented)
    assert doc["groups"][0]["monitor"] == {"interval": "10s", "timeout": "20s"}
    assert doc["groups"][0]["on_fail"] == "restart"


def test_pulse_check_looks_for_an_lsb_word_in_init_d_without_its_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_d = tmp_path / "init.d"
    init_d.mkdir()
    (init_d / "webapp").write_text("#!/bin/sh\n")
    (init_d / "webapp").chmod(0o755)
    monkeypatch.setattr(checks, "INIT_DIR", str(init_d))
    lsb = ResourceSpec(raw="lsb:webapp", agent="lsb:webapp")
    assert checks.resolve_agent(lsb, str(tmp_path / "resource.d")) == str(init_d / "webapp")
    missing = ResourceSpec(raw="lsb:nothing", agent="lsb:nothing")
    assert checks.resolve_agent(missing, str(init_d)) is None
