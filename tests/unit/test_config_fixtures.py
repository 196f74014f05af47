"""Every real-world fixture loads, and converts to TOML that loads back equal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from config_support import LEGACY, TOML_DIR, install

from pulse.config import load_config
from pulse.config.convert import to_toml
from pulse.config.model import AutoFailback, Config, McastMedium, UcastMedium

# The local node used for each fixture (a node of its ha.cf).
FIXTURE_NODES = {
    "000-prime-calc-apache": "prime",
    "001-julius-caesar-serial": "caesar",
    "002-kolmisoft-asterisk": "node01",
    "002-kolmisoft-ipaddr-iface": "node02",
    "002-kolmisoft-two-vips": "node01",
    "003-nausicaa-serfina": "serfina.anandhacorp.net",
    "004-three-node-apache": "server3.example.com",
    "004-three-node-apache-samba": "server2.example.com",
    "debian-samples": "kathy",
}
LEGACY_FIXTURES = sorted(p.name for p in LEGACY.iterdir() if p.is_dir())


def test_every_legacy_fixture_has_a_local_node() -> None:
    assert sorted(FIXTURE_NODES) == LEGACY_FIXTURES


def strip_sources(obj: object) -> object:
    """``obj`` with every ``source`` and ``origin`` field blanked, recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes: dict[str, object] = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if f.name == "source":
                changes[f.name] = None
            elif f.name == "origin":
                changes[f.name] = ""
            else:
                changes[f.name] = strip_sources(v)
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, tuple):
        return tuple(strip_sources(x) for x in obj)
    if isinstance(obj, dict):
        return {k: strip_sources(v) for k, v in obj.items()}
    return obj


@pytest.mark.parametrize("name", LEGACY_FIXTURES)
def test_legacy_fixture_loads(name: str, tmp_path: Path) -> None:
    d = install(LEGACY / name, tmp_path)
    loaded = load_config(d, node=FIXTURE_NODES[name])
    assert loaded.node == FIXTURE_NODES[name]
    assert loaded.node in loaded.config.nodes
    assert loaded.config.media
    assert all(w.severity == "warning" for w in loaded.warnings)


@pytest.mark.parametrize("name", LEGACY_FIXTURES)
def test_legacy_fixture_round_trips_through_toml(name: str, tmp_path: Path) -> None:
    d = install(LEGACY / name, tmp_path)
    node = FIXTURE_NODES[name]
    original = load_config(d, node=node).config
    toml_path = tmp_path / "converted.toml"
    toml_path.write_text(to_toml(original, header="round trip"))
    toml_path.chmod(0o600)
    again = load_config(toml_path, node=node).config
    assert strip_sources(again) == strip_sources(original)
    assert again.origin == str(toml_path)


def test_prime_calc_reads_the_one_line_config_as_written(tmp_path: Path) -> None:
    cfg = load_config(install(LEGACY / "000-prime-calc-apache", tmp_path), node="prime").config
    assert cfg.nodes == ("calc", "prime")
    assert cfg.timing.keepalive == 2000 and cfg.timing.deadtime == 10000
    assert cfg.timing.warntime == 5000 and cfg.timing.initdead == 20000
    assert cfg.auth.outbound_key.key == b"86e07a217fcd61fb981872ec57b68845"
    assert [r.agent for r in cfg.groups[0].resources] == ["IPaddr", "apache2"]
    assert cfg.parameters["keepalive"] == "2"
    assert cfg.parameters["initdead"] == "20000ms"


def test_julius_caesar_serial_link_uses_default_baud(tmp_path: Path) -> None:
    cfg = load_config(install(LEGACY / "001-julius-caesar-serial", tmp_path), node="julius").config
    assert cfg.auto_failback is AutoFailback.OFF
    (link,) = cfg.links
    assert link.name == "/dev/ttyS0" and link.kind == "serial"
    (group,) = cfg.groups
    assert group.key == "IPaddr::10.0.0.254"
    mailto = group.resources[2]
    assert (mailto.agent, mailto.args) == ("MailTo", ("alerts@myworkaddress.com", "JuliusCaesar"))


def test_asterisk_pair_udpport_before_ucast_changes_the_port(tmp_path: Path) -> None:
    loaded = load_config(install(LEGACY / "002-kolmisoft-asterisk", tmp_path), node="node01")
    (link,) = loaded.config.links
    assert isinstance(link, UcastMedium) and link.port == 496
    assert loaded.config.udpport == 496
    assert not any(w.message.startswith("udpport") for w in loaded.warnings)


def test_two_vips_udpport_after_ucast_keeps_694_and_warns(tmp_path: Path) -> None:
    loaded = load_config(install(LEGACY / "002-kolmisoft-two-vips", tmp_path), node="node01")
    assert [m.port for m in loaded.config.links] == [694, 694]
    assert loaded.config.udpport == 496
    assert loaded.config.parameters["udpport"] == "496"
    (warning,) = [w for w in loaded.warnings if w.message.startswith("udpport")]
    assert warning.line == 10
    assert "keeps port 694" in warning.message


def test_two_vips_odd_asterisk_resource_is_a_script_name(tmp_path: Path) -> None:
    loaded = load_config(install(LEGACY / "002-kolmisoft-two-vips", tmp_path), node="node01")
    first = loaded.config.groups[0].resources
    assert [(r.agent, r.args) for r in first] == [
        ("IPaddr", ("192.168.0.179",)),
        ("asterisk/24/eth0", ()),
    ]
    assert any("asterisk/24/eth0" in w.message for w in loaded.warnings)


def test_three_node_apache_keeps_the_fqdn_names(tmp_path: Path) -> None:
    cfg = load_config(
        install(LEGACY / "004-three-node-apache", tmp_path), node="Server1.Example.com"
    ).config
    assert cfg.nodes == ("server1.example.com", "server2.example.com", "server3.example.com")
    assert cfg.auth.outbound == 2
    assert cfg.timing.initdead == 120000
    assert cfg.logging.logfacility == "local0"


def test_debian_sample_accepts_every_listed_key(tmp_path: Path) -> None:
    cfg = load_config(install(LEGACY / "debian-samples", tmp_path), node="ken3").config
    assert [k.index for k in cfg.auth.keys] == [1, 2, 3]
    assert cfg.auth.outbound_key.method == "crc" and cfg.auth.outbound_key.key is None
    res = cfg.groups[0].resources[0]
    assert (res.agent, res.args) == ("IPaddr", ("135.9.216.3/28/eth0/135.9.216.12",))
    assert cfg.timing.warntime == 10000


def test_complete_toml_example_loads(tmp_path: Path) -> None:
    loaded = load_config(install(TOML_DIR / "web.toml", tmp_path), node="prime")
    cfg = loaded.config
    assert cfg.cluster == "web"
    assert cfg.auto_failback is AutoFailback.ON
    assert [m.kind for m in cfg.media] == ["bcast", "ucast", "mcast", "ping"]
    mcast = cfg.media[2]
    assert isinstance(mcast, McastMedium) and (mcast.group, mcast.port) == ("239.0.0.42", 696)
    assert cfg.ping_nodes == ("198.51.100.254",)
    assert cfg.auth.outbound_key.method == "sha256"
    assert cfg.timing.initdead == 30000
    assert cfg.parameters["realtime"] == "off"
    assert cfg.plugins["mailto"]["to"] == ["ops@example.com"]
    assert cfg.respawn[0].command == ("/usr/lib/heartbeat/ipfail",)
    assert cfg.ipfail  # built into pulse: no process, and the binary need not exist


def test_toml_example_round_trips(tmp_path: Path) -> None:
    original = load_config(install(TOML_DIR / "web.toml", tmp_path), node="calc").config
    again_path = tmp_path / "again.toml"
    again_path.write_text(to_toml(original))
    again_path.chmod(0o600)
    again = load_config(again_path, node="calc").config
    assert strip_sources(again) == strip_sources(original)


def test_toml_may_use_a_heartbeat_authkeys_file(tmp_path: Path) -> None:
    install(TOML_DIR / "authkeys", tmp_path)
    path = install(TOML_DIR / "with-authkeys.toml", tmp_path)
    cfg: Config = load_config(path, node="beta").config
    assert cfg.auth.outbound == 3 and cfg.auth.path == str(tmp_path / "authkeys")
    assert cfg.links[0].name == "/dev/ttyS0"
