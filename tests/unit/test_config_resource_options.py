"""The TOML [resources] table: operation timeouts and stop retries for every resource."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.config import load_config
from pulse.config.convert import to_toml
from pulse.config.model import ResourceOptions
from pulse.errors import ConfigError

BASE = """[cluster]
nodes = ["a", "b"]
auto_failback = "on"
[[links]]
type = "bcast"
interface = "lo"
[auth]
use = 1
[[auth.keys]]
index = 1
method = "sha256"
key = "k"
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "pulse.toml"
    path.write_text(BASE + extra)
    path.chmod(0o600)
    return path


def test_defaults_are_heartbeats_fixed_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), node="a").config
    assert config.resource_options == ResourceOptions(
        start=60000, stop=60000, status=20000, stop_retries=10
    )


def test_timeouts_and_retries_are_read_and_survive_convert(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[resources]\nstart_timeout = "5s"\nstop_timeout = 2.5\nstatus_timeout = "500ms"\n'
        "stop_retries = -1\n",
    )
    config = load_config(path, node="a").config
    assert config.resource_options == ResourceOptions(
        start=5000, stop=2500, status=500, stop_retries=-1
    )
    again = tmp_path / "again.toml"
    again.write_text(to_toml(config))
    again.chmod(0o600)
    assert load_config(again, node="a").config.resource_options == config.resource_options


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('start_timeout = "soon"', "resources.start_timeout: expected a positive duration"),
        ("stop_timeout = 0", "resources.stop_timeout: expected a positive duration"),
        ('stop_retries = "ten"', "resources.stop_retries: expected a whole number"),
        ("strat_timeout = 1", "resources.strat_timeout: unknown key (did you mean start_timeout?)"),
    ],
)
def test_bad_values_are_reported_at_their_line(tmp_path: Path, extra: str, message: str) -> None:
    path = write(tmp_path, "[resources]\n" + extra + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, node="a")
    line = len(BASE.splitlines()) + 2
    assert f"{path}:{line}: {message}" in str(err.value)


def test_arp_count_and_interval_override_heartbeats_announcement_pattern(tmp_path: Path) -> None:
    from pulse.daemon import _arp_overrides
    from pulse.resources import ArpPolicy

    path = write(tmp_path, '[resources]\narp_count = 3\narp_interval = "100ms"\n')
    options = load_config(path, node="a").config.resource_options
    assert (options.arp_count, options.arp_interval) == (3, 100)
    overrides = _arp_overrides(options)
    assert overrides is not None
    assert overrides["IPaddr"] == ArpPolicy(count=3, interval=0.1)
    assert overrides["IPaddr2"] == ArpPolicy(count=3, interval=0.1)
    assert _arp_overrides(ResourceOptions()) is None
