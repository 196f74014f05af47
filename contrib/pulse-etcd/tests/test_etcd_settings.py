"""``[plugins.etcd]``: key names (safe, stable), defaults from ``[cluster]``, clashes."""

from __future__ import annotations

from pulse_etcd.settings import Settings, read_settings

from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    Config,
    ResourceGroup,
    ResourceSpec,
)
from pulse.plugin.settings import SettingsReader


def config(*groups: str, cluster: str = "linux-ha") -> Config:
    key = AuthKey(index=1, method=AuthMethod.CRC, key=None)
    return Config(
        nodes=("prime", "calc"),
        media=(),
        auth=AuthKeys(outbound=1, keys=(key,)),
        cluster=cluster,
        groups=tuple(
            ResourceGroup(node="prime", resources=(ResourceSpec(raw=g, agent="IPaddr"),))
            for g in groups
        ),
    )


def read(cfg: Config, table: dict[str, object]) -> tuple[Settings, list[str]]:
    reader = SettingsReader(table, plugin="etcd", file="/etc/pulse/pulse.toml")
    settings, diags = read_settings(cfg, reader)
    return settings, [str(d) for d in diags]


def test_etcd_group_keys_have_no_slash_and_live_under_the_cluster_name() -> None:
    cfg = config("198.51.100.20/24/eth0", "203.0.113.5", cluster="shop")
    s, diags = read(
        cfg, {"endpoints": ["http://203.0.113.11:2379"], "names": {"203.0.113.5": "db"}}
    )
    assert diags == [] or all("warning" in d for d in diags)
    assert s.key("198.51.100.20/24/eth0") == "/pulse/shop/groups/198.51.100.20%2F24%2Feth0"
    assert s.key("203.0.113.5") == "/pulse/shop/groups/db"
    assert s.demote_after == 6.0 and s.wait == 9.5  # the defaults: ttl 8, margin 2


def test_etcd_two_groups_on_one_key_and_a_name_with_a_slash_are_errors() -> None:
    cfg = config("203.0.113.5", "203.0.113.6")
    _, diags = read(
        cfg,
        {
            "endpoints": ["http://203.0.113.11:2379"],
            "names": {"203.0.113.5": "web", "203.0.113.6": "web", "203.0.113.7": "a/b"},
        },
    )
    text = "\n".join(diags)
    assert "would share the etcd key 'web'" in text
    assert "expected a key name without '/', got 'a/b'" in text


def test_etcd_an_empty_table_is_no_gate_and_no_complaint() -> None:
    s, diags = read(config("203.0.113.5"), {})
    assert s.endpoints == () and diags == []
