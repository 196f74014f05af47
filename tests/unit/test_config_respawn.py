"""The config side of respawn/failfast: env lines, Heartbeat's API clients."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_support import minimal_hacf

from pulse.config import load_config
from pulse.config.model import RespawnDirective, heartbeat_client


def test_env_lines_are_kept_in_order_with_values_as_written(tmp_path: Path) -> None:
    d = minimal_hacf(tmp_path, "env FOO=bar", "env EMPTY=", "env URL=a=b")
    config = load_config(d, node="alpha").config
    assert config.env == (("FOO", "bar"), ("EMPTY", ""), ("URL", "a=b"))


@pytest.mark.parametrize(
    ("program", "client"),
    [
        ("/usr/lib/heartbeat/ipfail", "ipfail"),
        ("/usr/lib/heartbeat/ccm", "ccm"),
        ("/usr/lib/heartbeat/dopd", "dopd"),
        ("/usr/lib/heartbeat/crmd", "crmd"),
        ("/usr/local/bin/my-ccm-watcher", None),
    ],
)
def test_heartbeat_api_clients_are_recognised_by_basename(program: str, client: str | None) -> None:
    assert heartbeat_client(RespawnDirective(user="hacluster", command=(program,))) == client


def test_respawn_of_a_heartbeat_api_client_is_a_warning_naming_the_line(tmp_path: Path) -> None:
    d = minimal_hacf(tmp_path, "respawn hacluster /usr/lib/heartbeat/dopd")
    loaded = load_config(d, node="alpha", strict_host=True)  # not an error, even strictly
    [warning] = [w for w in loaded.warnings if "dopd" in w.message]
    assert warning.line == 6
    assert "client API" in warning.message and "not be started" in warning.message


def test_respawn_of_ipfail_with_a_ping_node_is_accepted_without_a_warning(
    tmp_path: Path,
) -> None:
    d = minimal_hacf(tmp_path, "ping 198.51.100.254", "respawn hacluster /usr/lib/heartbeat/ipfail")
    loaded = load_config(d, node="alpha", strict_host=True)
    assert loaded.config.ipfail
    assert not [w for w in loaded.warnings if "ipfail" in w.message]
