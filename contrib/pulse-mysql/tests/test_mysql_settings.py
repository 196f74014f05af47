from __future__ import annotations

import os
from pathlib import Path

import pulse_mysql
import pytest
from pulse_mysql.agent import MySQLReplicaAgent
from pulse_mysql.check import ReplicationCheck
from pulse_mysql.settings import parse_mycnf, resolve

from pulse.config import load_config
from pulse.config.model import Config
from pulse.errors import Severity
from pulse.plugin.host import PluginHost
from pulse.resources.agents import UnusableAgent

HACF = """\
keepalive 1
deadtime 10
udpport 694
bcast lo
auto_failback off
node node01
node node02
"""

TOML = """\
[cluster]
nodes = ["node01", "node02"]
auto_failback = "off"

[timing]
keepalive = "1s"
deadtime = "10s"

[[links]]
type = "bcast"
interface = "lo"

[auth]
use = 1

[[auth.keys]]
index = 1
method = "sha1"
key = "secret"

[[groups]]
node = "node01"
resources = ["MySQLReplica", "198.51.100.100"]

[[groups]]
node = "node02"
resources = ["198.51.100.101", "apache2"]

[plugins.mysql]
{table}
"""


def legacy(tmp_path: Path, haresources: str) -> Config:
    (tmp_path / "ha.cf").write_text(HACF)
    (tmp_path / "authkeys").write_text("auth 1\n1 sha1 secret\n")
    (tmp_path / "authkeys").chmod(0o600)
    (tmp_path / "haresources").write_text(haresources)
    return load_config(tmp_path, node="node01").config


def toml(tmp_path: Path, table: str) -> Config:
    path = tmp_path / "pulse.toml"
    path.write_text(TOML.format(table=table))
    path.chmod(0o600)
    return load_config(path, node="node01").config


def messages(config: Config) -> list[str]:
    return [str(d) for d in pulse_mysql.pulse_configure(config, "node01") or []]


# --------------------------------------------------------------------------- my.cnf


def test_mycnf_pulse_section_overrides_client_and_dashes_become_underscores() -> None:
    text = """\
# credentials for pulse
[client]
user = admin
password = "from client"
socket=/run/mysqld/mysqld.sock
[mysqld]
password = not-this-one
[pulse]
password = 'p#ss word'
rejoin-user = repl
skip-ssl
!includedir /etc/mysql/conf.d/
"""
    assert parse_mycnf(text) == {
        "user": "admin",
        "password": "p#ss word",
        "socket": "/run/mysqld/mysqld.sock",
        "rejoin_user": "repl",
    }


def test_mycnf_syntax_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_mycnf("user = root\n")


# --------------------------------------------------------------------------- haresources


def test_haresources_word_options_override_the_defaults(tmp_path: Path) -> None:
    config = legacy(
        tmp_path,
        "node01 MySQLReplica::host=127.0.0.1::port=3307::max_lag=30s::apply_timeout=500ms"
        "::allow_not_replica=no::ignore_errnos=1062,1146 198.51.100.100\n",
    )
    settings, diags = resolve(config, config.groups[0].resources[0])
    assert diags == []
    assert settings.connection.where == "root@127.0.0.1:3307"
    assert settings.policy.max_lag == 30.0 and settings.policy.apply_timeout == 0.5
    assert settings.policy.allow_not_replica is False
    assert settings.policy.ignore_errnos == frozenset({1062, 1146})


def test_password_in_haresources_is_refused_with_where_to_put_it(tmp_path: Path) -> None:
    config = legacy(tmp_path, "node01 MySQLReplica::password=hunter2 198.51.100.100\n")
    assert messages(config) == [
        f"{tmp_path}/haresources:1: MySQLReplica: password must not be written in haresources "
        "(every user can read it); put it in a defaults_file (chmod 600) or in [plugins.mysql]"
    ]


def test_unknown_and_malformed_word_options_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    config = legacy(tmp_path, "node01 MySQLReplica::max_lga=3::port=http::3306 198.51.100.100\n")
    assert messages(config) == [
        f"{tmp_path}/haresources:1: MySQLReplica: unknown option 'max_lga' (did you mean max_lag?)",
        f"{tmp_path}/haresources:1: MySQLReplica argument '3306' is not key=value (e.g. port=3306)",
        f"{tmp_path}/haresources:1: MySQLReplica: port=http: expected a port number (1-65535)",
    ]


def test_a_port_of_non_ascii_digits_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    # "³³⁰⁶" passes str.isdigit(), and int() refuses it.
    config = legacy(tmp_path, "node01 MySQLReplica::port=\u00b3\u00b3\u2070\u2076 198.51.100.100\n")
    assert messages(config) == [
        f"{tmp_path}/haresources:1: MySQLReplica: port=\u00b3\u00b3\u2070\u2076: "
        "expected a port number (1-65535)",
    ]


def test_mysql_replica_after_the_floating_ip_is_a_warning(tmp_path: Path) -> None:
    config = legacy(tmp_path, "node01 198.51.100.100 MySQLReplica\n")
    diags = list(pulse_mysql.pulse_configure(config, "node01") or [])
    assert [d.severity for d in diags] == [Severity.WARNING]
    assert "comes after a floating IP in group 198.51.100.100" in diags[0].message


def test_rejoin_host_without_a_user_is_an_error(tmp_path: Path) -> None:
    config = legacy(tmp_path, "node01 MySQLReplica::rejoin_host=198.51.100.100 198.51.100.100\n")
    assert messages(config) == [
        f"{tmp_path}/haresources:1: rejoin_host needs rejoin_user (and rejoin_password in "
        "[plugins.mysql] or in the defaults_file's [pulse] section)"
    ]


def test_defaults_file_supplies_credentials_and_must_not_be_world_readable(tmp_path: Path) -> None:
    cnf = tmp_path / "mysql.cnf"
    cnf.write_text(
        "[client]\nuser = pulse\npassword = pw\n"
        "[pulse]\nrejoin_user = repl\nrejoin_password = rpw\n"
    )
    cnf.chmod(0o644)
    config = legacy(
        tmp_path,
        "node01 MySQLReplica::defaults_file=mysql.cnf::rejoin_host=198.51.100.100 198.51.100.100\n",
    )
    settings, diags = resolve(config, config.groups[0].resources[0])
    assert settings.connection.user == "pulse" and settings.connection.password == "pw"
    assert settings.rejoin is not None and (settings.rejoin.user, settings.rejoin.password) == (
        "repl",
        "rpw",
    )
    assert [str(d) for d in diags] == [
        f"{tmp_path}/haresources:1: warning: defaults_file {cnf} holds credentials and is "
        f"readable by everyone; chmod 600 {cnf}"
    ]
    assert "pw" not in repr(settings)


def test_missing_defaults_file_is_an_error(tmp_path: Path) -> None:
    config = legacy(
        tmp_path, "node01 MySQLReplica::defaults_file=/nonexistent/my.cnf 198.51.100.100\n"
    )
    assert messages(config) == [
        f"{tmp_path}/haresources:1: cannot read defaults_file /nonexistent/my.cnf: "
        "No such file or directory"
    ]


def test_config_without_mysql_is_left_alone(tmp_path: Path) -> None:
    config = legacy(tmp_path, "node01 198.51.100.100 apache2\n")
    assert pulse_mysql.pulse_configure(config, "node01") is None
    assert list(pulse_mysql.pulse_register_takeover_checks(config, "node01") or []) == []


# --------------------------------------------------------------------------- TOML


def test_toml_table_sets_the_defaults_and_lists_extra_groups(tmp_path: Path) -> None:
    config = toml(
        tmp_path,
        'host = "127.0.0.1"\nport = 3307\npassword = "pw"\nmax_lag = "1m"\n'
        'groups = ["198.51.100.101"]',
    )
    assert messages(config) == []
    checks = list(pulse_mysql.pulse_register_takeover_checks(config, "node01") or [])
    assert [c.group for c in checks if isinstance(c, ReplicationCheck)] == [
        "MySQLReplica",
        "198.51.100.101",
    ]
    assert all(
        isinstance(c, ReplicationCheck) and c.settings.policy.max_lag == 60.0 for c in checks
    )
    assert all(
        isinstance(c, ReplicationCheck) and c.settings.connection.port == 3307 for c in checks
    )


def test_toml_errors_name_the_line_of_the_key(tmp_path: Path) -> None:
    config = toml(tmp_path, 'port = 99999\nmax_lga = 3\ngroups = ["nope"]')
    path = tmp_path / "pulse.toml"
    assert messages(config) == [
        f"{path}:30: plugins.mysql.port: expected a whole number from 1 to 65535, got 99999",
        f"{path}:31: plugins.mysql.max_lga: unknown key (did you mean max_lag?)",
        f"{path}:32: plugins.mysql.groups: no resource group is called 'nope' (a group is "
        "named by its first resource: 198.51.100.101, MySQLReplica)",
    ]


def test_toml_values_have_toml_types_as_in_every_plugin(tmp_path: Path) -> None:
    # The table is read by pulse.plugin.settings: a port is a number and a flag true or
    # false there (a MySQLReplica word, all strings, still says port=3307 and yes/no).
    config = toml(tmp_path, 'port = "3307"\nallow_stopped = "yes"\nread_timeout = "1500ms"')
    path = tmp_path / "pulse.toml"
    assert messages(config) == [
        f"{path}:30: plugins.mysql.port: expected a whole number from 1 to 65535, got '3307'",
        f"{path}:31: plugins.mysql.allow_stopped: expected true or false, got 'yes'",
    ]
    settings, _ = resolve(config)
    assert settings.connection.read_timeout == 1.5


# --------------------------------------------------------------------------- hooks


def test_agent_factory_builds_the_agent_or_an_unusable_one(tmp_path: Path) -> None:
    config = legacy(
        tmp_path,
        "node01 MySQLReplica::port=3307 198.51.100.100\n"
        "node02 MySQLReplica::port=0 198.51.100.101\n",
    )
    good, bad = (g.resources[0] for g in config.groups)
    assert isinstance(pulse_mysql.make_agent(good, config), MySQLReplicaAgent)
    unusable = pulse_mysql.make_agent(bad, config)
    assert (
        isinstance(unusable, UnusableAgent) and "port=0: expected a port number" in unusable.problem
    )


def test_plugin_host_finds_the_agent_and_the_check(tmp_path: Path) -> None:
    config = legacy(tmp_path, "node01 MySQLReplica 198.51.100.100\n")
    host = PluginHost(load_entrypoints=False, plugins={"mysql": pulse_mysql})
    assert host.configure(config, "node01") == []
    assert list(host.resource_agents(config, "node01")) == ["MySQLReplica"]
    assert [type(c).__name__ for c in host.takeover_checks(config, "node01")] == [
        "ReplicationCheck"
    ]


def test_the_entry_point_is_installed() -> None:
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="pulse", name="mysql")] == ["pulse_mysql"]
    assert os.path.exists(os.path.join(os.path.dirname(pulse_mysql.__file__), "py.typed"))
