"""What a SIGHUP applies and what it refuses (src/pulse/reload.py), on real configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from config_support import write_legacy

from pulse.config import load_config
from pulse.config.model import Config, MonitorOptions
from pulse.reload import plan_reload

HA_CF = "keepalive 1\ndeadtime 10\nbcast lo\nauto_failback on\nnode alpha beta\n"


def load(tmp_path: Path, hacf: str = HA_CF, haresources: str = "alpha 198.51.100.10\n",
         authkeys: str = "auth 1\n1 sha1 secret\n") -> Config:  # fmt: skip
    d = write_legacy(tmp_path, hacf, haresources=haresources, authkeys=authkeys)
    return load_config(d, node="alpha").config


def test_timers_keys_and_logging_are_applied(tmp_path: Path) -> None:
    running = load(tmp_path)
    new = load(
        tmp_path,
        HA_CF.replace("keepalive 1", "keepalive 500ms").replace("deadtime 10", "deadtime 3")
        + "logfile /var/log/ha-log\n",
        authkeys="auth 2\n1 sha1 secret\n2 sha256 newer\n",
    )
    plan = plan_reload(running, new)
    assert set(plan.applied) == {"timing", "auth", "logging"}
    assert plan.refused == ()
    assert (plan.config.timing.keepalive, plan.config.timing.deadtime) == (500, 3000)
    assert plan.config.auth.outbound == 2
    assert plan.config.logging.logfile == "/var/log/ha-log"


def test_a_new_node_list_and_a_changed_group_are_refused_with_where_they_are_written(
    tmp_path: Path,
) -> None:
    running = load(tmp_path)
    new = load(
        tmp_path,
        HA_CF.replace("node alpha beta", "node alpha beta gamma"),
        haresources="alpha 198.51.100.12\nbeta 198.51.100.11\n",
    )
    plan = plan_reload(running, new)
    assert plan.applied == ()
    assert plan.config == running
    ha = tmp_path / "ha.d"
    assert plan.refused == (
        f"{ha}/ha.cf: the node list changed; restart pulse to apply it (systemctl restart pulse)",
        f"{ha}/haresources:1: the resource groups (haresources) changed or were removed; "
        "restart pulse to apply it (systemctl restart pulse)",
    )


def test_groups_added_at_the_end_are_applied(tmp_path: Path) -> None:
    running = load(tmp_path)
    new = load(tmp_path, haresources="# web\nalpha 198.51.100.10\nbeta 198.51.100.11 Dummy\n")
    plan = plan_reload(running, new)
    assert (plan.applied, plan.refused) == (("groups",), ())
    assert [g.key for g in plan.added_groups] == ["198.51.100.11"]
    assert [g.key for g in plan.config.groups] == ["198.51.100.10", "198.51.100.11"]


def test_a_new_group_preferring_an_unknown_node_is_refused(tmp_path: Path) -> None:
    running = load(tmp_path)
    new = load(
        tmp_path,
        HA_CF.replace("node alpha beta", "node alpha beta gamma"),
        haresources="alpha 198.51.100.10\ngamma 198.51.100.11\n",
    )
    plan = plan_reload(running, new)
    assert "groups" not in plan.applied
    assert any("prefers gamma, not in the running node list" in line for line in plan.refused)


def test_an_unchanged_configuration_changes_nothing(tmp_path: Path) -> None:
    running = load(tmp_path)
    plan = plan_reload(running, load(tmp_path))
    assert (plan.applied, plan.refused, plan.config) == ((), (), running)


def test_resource_options_are_applied(tmp_path: Path) -> None:
    running = load(tmp_path)
    options = dataclasses.replace(running.resource_options, stop=5000, stop_retries=2)
    plan = plan_reload(running, dataclasses.replace(running, resource_options=options))
    assert (plan.applied, plan.refused) == (("resource_options",), ())
    assert plan.config.resource_options.stop_retries == 2


def test_new_monitoring_settings_of_a_group_are_applied_and_nothing_else_changes(
    tmp_path: Path,
) -> None:
    running = load(tmp_path)
    group = dataclasses.replace(
        running.groups[0], monitor=MonitorOptions(interval=5000), migration_threshold=2
    )
    plan = plan_reload(running, dataclasses.replace(running, groups=(group,)))
    assert (plan.applied, plan.refused, plan.added_groups) == (("monitoring",), (), ())
    assert plan.retuned_groups == (group,)
    assert plan.config.groups == (group,)
