"""pulse's TOML format: schema, key-path diagnostics, shared validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from config_support import messages

from pulse.config import load_config
from pulse.config.convert import to_toml
from pulse.config.model import BcastMedium, UcastMedium
from pulse.config.toml import key_lines
from pulse.errors import ConfigError

MINIMAL = """\
[cluster]
nodes = ["Alpha", "beta"]
auto_failback = "off"

[[links]]
type = "bcast"
interface = "eth0"

[auth]
use = 1
keys = [{index = 1, method = "md5", key = "k"}]
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "pulse.toml"
    p.write_text(text)
    p.chmod(mode)
    return p


def errors(tmp_path: Path, text: str, node: str = "alpha") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), node=node)
    return messages(info.value, tmp_path)


def test_minimal_toml_uses_heartbeat_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), node="ALPHA").config
    assert cfg.nodes == ("alpha", "beta")
    assert (cfg.timing.keepalive, cfg.timing.deadtime, cfg.timing.warntime) == (1000, 30000, 15000)
    assert cfg.timing.initdead == 30000
    assert cfg.parameters["udpport"] == "694"
    assert cfg.resource_dir == str(tmp_path / "resource.d")


def test_links_default_to_cluster_udpport_wherever_it_is_written(tmp_path: Path) -> None:
    text = MINIMAL.replace('auto_failback = "off"', 'auto_failback = "off"\nudpport = 7000')
    text += '\n[[links]]\ntype = "ucast"\ninterface = "eth1"\npeer = "198.51.100.2"\nport = 7001\n'
    cfg = load_config(write(tmp_path, text), node="alpha").config
    bcast, ucast = cfg.media
    assert isinstance(bcast, BcastMedium) and bcast.port == 7000
    assert isinstance(ucast, UcastMedium) and ucast.port == 7001


def test_durations_accept_units_and_plain_seconds(tmp_path: Path) -> None:
    text = (
        MINIMAL + '\n[timing]\nkeepalive = "500ms"\ndeadtime = 5\nwarntime = 2.5\ninitdead = "1m"\n'
    )
    cfg = load_config(write(tmp_path, text), node="alpha").config
    t = cfg.timing
    assert (t.keepalive, t.deadtime, t.warntime, t.initdead) == (500, 5000, 2500, 60000)
    assert cfg.parameters["initdead"] == "60"  # recorded as Heartbeat would have it written
    assert cfg.parameters["keepalive"] == "500ms"


def test_deadtime_error_names_key_path_and_line(tmp_path: Path) -> None:
    text = MINIMAL + '\n[timing]\nkeepalive = "2s"\ndeadtime = "4s"\n'
    assert errors(tmp_path, text) == [
        "pulse.toml:15: timing.deadtime: must be more than twice keepalive (4s); "
        "raise deadtime or lower keepalive"
    ]


def test_unknown_key_in_a_link_is_an_error_with_suggestion(tmp_path: Path) -> None:
    text = MINIMAL.replace('interface = "eth0"', 'interface = "eth0"\nprot = 700')
    assert errors(tmp_path, text) == [
        "pulse.toml:8: links[0].prot: unknown key (did you mean port?)"
    ]


def test_second_array_element_is_located_on_its_own_line(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[links]]\ntype = "ucast"\ninterface = "eth1"\npeer = "not a host!"\n'
    assert errors(tmp_path, text) == [
        "pulse.toml:16: links[1].peer: [not a host!] is neither an IP address nor a host name"
    ]


def test_heartbeat_table_values_are_validated_like_ha_cf(tmp_path: Path) -> None:
    text = MINIMAL + '\n[heartbeat]\nrealtime = "off"\nmemreserve = "-1"\n'
    assert errors(tmp_path, text) == [
        "pulse.toml:15: heartbeat.memreserve: bad value [-1] (integer 1-1000000000)"
    ]


def test_structured_directive_is_not_allowed_in_heartbeat_table(tmp_path: Path) -> None:
    text = MINIMAL + '\n[heartbeat]\nkeepalive = "2"\n'
    (msg,) = errors(tmp_path, text)
    assert msg.startswith("pulse.toml:14: heartbeat.keepalive: unknown key")


def test_pacemaker_on_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + '\n[heartbeat]\npacemaker = "on"\n'
    assert errors(tmp_path, text) == [
        "pulse.toml:14: heartbeat.pacemaker: on: pulse runs haresources (v1) clusters; "
        "pacemaker/crm must be off"
    ]


def test_syntax_error_at_end_of_file_has_a_line(tmp_path: Path) -> None:
    assert errors(tmp_path, '[cluster]\nnodes = ["a"\n') == [
        "pulse.toml:2: TOML syntax error: Unclosed array (at end of file)"
    ]


def test_inline_keys_need_a_private_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL, mode=0o640), node="alpha")
    assert messages(info.value, tmp_path) == [
        "pulse.toml:9: auth: inline keys: Bad permissions on keyfile [pulse.toml], 600 recommended."
    ]


def test_groups_accept_haresources_words(tmp_path: Path) -> None:
    text = MINIMAL + (
        '\n[[groups]]\nnode = "beta"\n'
        'resources = ["198.51.100.7", "IPaddr2::198.51.100.8/24", "MailTo::a@b.c::x"]\n'
    )
    (group,) = load_config(write(tmp_path, text), node="alpha").config.groups
    assert [(r.agent, r.args) for r in group.resources] == [
        ("IPaddr", ("198.51.100.7",)),
        ("IPaddr2", ("198.51.100.8/24",)),
        ("MailTo", ("a@b.c", "x")),
    ]


def test_duplicate_group_key_is_an_error(tmp_path: Path) -> None:
    text = MINIMAL + (
        '\n[[groups]]\nnode = "alpha"\nresources = ["web"]\n'
        '\n[[groups]]\nnode = "beta"\nresources = ["web"]\n'
    )
    assert errors(tmp_path, text) == [
        "pulse.toml:17: groups[1]: duplicate resource group key [web] (first used at "
        "pulse.toml:13); the first resource of every group must be unique"
    ]


def test_key_lines_follow_tables_and_arrays_of_tables() -> None:
    lines = key_lines('[a]\nx = 1\n[[l]]\nt = 1\n[[l]]\nt = 2\n[l.sub]\nk = 3\n"q.k" = 1\n')
    assert lines[("a", "x")] == 2
    assert lines[("l", 0, "t")] == 4
    assert lines[("l", 1, "t")] == 6
    assert lines[("l", 1, "sub", "k")] == 8


def test_documented_example_loads(tmp_path: Path) -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    example = re.findall(r"```toml\n(.*?)```", doc, re.S)[0]
    loaded = load_config(write(tmp_path, example), node="calc")
    assert loaded.config.cluster == "web"
    assert len(loaded.config.groups) == 2


def test_cluster_ipfail_turns_the_built_in_ipfail_on_and_round_trips(tmp_path: Path) -> None:
    text = MINIMAL.replace('auto_failback = "off"', 'auto_failback = "off"\nipfail = true')
    text += '\n[[links]]\ntype = "ping"\nhost = "198.51.100.254"\n'
    cfg = load_config(write(tmp_path, text), node="alpha").config
    assert cfg.ipfail and cfg.respawn == ()
    again = load_config(write(tmp_path, to_toml(cfg)), node="alpha").config
    assert again.ipfail


def test_cluster_ipfail_must_be_a_boolean(tmp_path: Path) -> None:
    text = MINIMAL.replace('auto_failback = "off"', 'auto_failback = "off"\nipfail = "yes"')
    assert errors(tmp_path, text) == [
        "pulse.toml:4: cluster.ipfail: expected true or false, got string 'yes'"
    ]


def test_metrics_listen_takes_an_address_and_a_port_and_round_trips(tmp_path: Path) -> None:
    for listen, host in (("127.0.0.1:9694", "127.0.0.1"), ("[::1]:9694", "::1")):
        cfg = load_config(
            write(tmp_path, MINIMAL + f'[metrics]\nlisten = "{listen}"\n'), node="alpha"
        )
        assert cfg.config.metrics is not None
        assert (cfg.config.metrics.host, cfg.config.metrics.port) == (host, 9694)
        again = load_config(write(tmp_path, to_toml(cfg.config)), node="alpha").config
        assert again.metrics == cfg.config.metrics


def test_metrics_listen_must_be_an_ip_address_and_a_port(tmp_path: Path) -> None:
    for bad in ("localhost:9694", "127.0.0.1", "127.0.0.1:99999"):
        text = MINIMAL + f'[metrics]\nlisten = "{bad}"\n'
        assert errors(tmp_path, text) == [
            f'pulse.toml:13: metrics.listen: expected "ADDRESS:PORT" with an IP address, '
            f"e.g. \"127.0.0.1:9694\", got '{bad}'"
        ]


def test_notify_scripts_take_an_argv_events_and_a_timeout_and_round_trip(tmp_path: Path) -> None:
    text = MINIMAL + (
        "[[notify]]\n"
        'command = ["/bin/true", "--vip", "198.51.100.10"]\n'
        'events = ["acquired", "released"]\n'
        'timeout = "3s"\n'
        "[[notify]]\n"
        'command = ["/bin/true"]\n'
    )
    cfg = load_config(write(tmp_path, text), node="alpha").config
    first, second = cfg.notify
    assert first.command == ("/bin/true", "--vip", "198.51.100.10")
    assert (first.events, first.timeout) == (("acquired", "released"), 3000)
    assert "node-dead" in second.events and second.timeout == 10000
    again = load_config(write(tmp_path, to_toml(cfg)), node="alpha").config
    assert again.notify == tuple(
        dataclasses.replace(n, source=m.source)
        for n, m in zip(cfg.notify, again.notify, strict=True)
    )


def test_a_notify_script_needs_an_absolute_program_and_known_events(tmp_path: Path) -> None:
    text = MINIMAL + '[[notify]]\ncommand = ["notify.sh"]\n'
    text += '[[notify]]\ncommand = ["/bin/true"]\nevents = ["aquired"]\n'
    assert errors(tmp_path, text) == [
        "pulse.toml:13: notify[0].command: program [notify.sh] must be an absolute path",
        "pulse.toml:16: notify[1].events: unknown event [aquired] (did you mean acquired?); "
        "known: node-dead, node-up, acquired, released, acquire-failed, release-failed, "
        "fenced, fence-failed, shutdown, resource-failed, resource-recovered, etcd-lost,"
        " etcd-regained",
    ]
