"""ha.cf, authkeys and haresources reading rules, quirks included (docs/heartbeat.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_support import messages, write_legacy

from pulse.config import load_config
from pulse.config.authkeys import parse_authkeys
from pulse.config.durations import format_ms, parse_bool, parse_duration, parse_hb_time
from pulse.config.hacf import parse_hacf
from pulse.config.haresources import parse_haresources
from pulse.config.model import (
    AutoFailback,
    BcastMedium,
    McastMedium,
    PingGroupMedium,
    SerialMedium,
    UcastMedium,
)
from pulse.errors import ConfigError

BASE = "keepalive 1\ndeadtime 10\nbcast eth0\nauto_failback on\nnode alpha beta\n"


def hacf(text: str):  # type: ignore[no-untyped-def]
    return parse_hacf(text.encode(), "ha.cf")


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "ms"),
    [("2", 2000), ("1.5", 1500), ("500ms", 500), ("500msec", 500), ("10us", 0), ("1500us", 2),
     ("2MS", 2), (".5", 500), ("0", 0)],
)  # fmt: skip
def test_heartbeat_time_syntax(text: str, ms: int) -> None:
    assert parse_hb_time(text) == ms


@pytest.mark.parametrize("text", ["", "ms", "2s", "10x", "-1", "1e3", "2 seconds", "1,5"])
def test_heartbeat_time_rejects_what_cl_get_msec_rejects(text: str) -> None:
    assert parse_hb_time(text) is None


def test_toml_durations_also_accept_seconds_minutes_hours() -> None:
    assert parse_duration("2s") == 2000
    assert parse_duration("1m") == 60000
    assert parse_duration("1h") == 3600000
    assert parse_duration("500ms") == 500
    assert parse_duration("2 weeks") is None
    assert format_ms(4000) == "4s" and format_ms(1500) == "1500ms"


@pytest.mark.parametrize("word", ["true", "On", "YES", "y", "1"])
def test_heartbeat_true_words(word: str) -> None:
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", ["false", "Off", "no", "N", "0"])
def test_heartbeat_false_words(word: str) -> None:
    assert parse_bool(word) is False


# --------------------------------------------------------------------------- ha.cf


def test_node_line_splits_on_commas_and_whitespace_and_lowercases() -> None:
    cf = hacf("node Alpha beta,GAMMA\tdelta\n")
    assert cf.nodes == ["alpha", "beta", "gamma", "delta"]
    assert not cf.diagnostics


def test_each_token_is_applied_so_keepalive_1_2_keeps_the_last() -> None:
    cf = hacf("keepalive 1 2\n")
    assert cf.raw_timing["keepalive"] == 2000
    assert cf.parameters["keepalive"] == "2"


def test_bcast_with_two_interfaces_declares_two_media() -> None:
    cf = hacf("bcast eth0 eth1\n")
    assert [m.name for m in cf.media] == ["eth0", "eth1"]


def test_comment_runs_to_end_of_line_and_blank_lines_are_ignored() -> None:
    cf = hacf("  # header\n\nkeepalive 3 # seconds\n   \n")
    assert cf.parameters == {"keepalive": "3"}
    assert not cf.diagnostics


def test_udpport_applies_only_to_media_after_it_and_warns_when_late() -> None:
    cf = hacf("bcast eth0\nudpport 7000\nucast eth1 198.51.100.2\nbcast eth2\n")
    ports = {(m.kind, m.name): m.port for m in cf.media}  # type: ignore[union-attr]
    # bcast read udpport at its first line (694, cached); ucast's first line came later.
    assert ports == {("bcast", "eth0"): 694, ("ucast", "eth1"): 7000, ("bcast", "eth2"): 694}
    assert cf.udpport == 7000
    (warning,) = cf.diagnostics
    assert (warning.line, warning.severity) == (2, "warning")
    assert "comes after the first bcast line (ha.cf:1)" in warning.message


def test_udpport_before_media_changes_the_port_without_warning() -> None:
    cf = hacf("udpport 7000\nbcast eth0\nucast eth1 198.51.100.2\n")
    assert [m.port for m in cf.media] == [7000, 7000]  # type: ignore[union-attr]
    assert not cf.diagnostics


def test_baud_applies_to_serial_lines_after_it() -> None:
    late = hacf("serial /dev/ttyS0\nbaud 115200\nserial /dev/ttyS1\n")
    assert [m.baud for m in late.media] == [19200, 19200]  # type: ignore[union-attr]
    assert late.diagnostics[0].severity == "warning"
    early = hacf("baud 115200\nserial /dev/ttyS0 /dev/ttyS1\n")
    assert [m.baud for m in early.media] == [115200, 115200]  # type: ignore[union-attr]
    assert all(isinstance(m, SerialMedium) for m in early.media)


def test_mcast_ucast_and_ping_group_take_the_whole_line() -> None:
    cf = hacf(
        "mcast eth0 239.0.0.1 694 1 0\nucast eth1 198.51.100.2\n"
        "ping_group uplinks 198.51.100.1 198.51.100.254\nping 203.0.113.1 203.0.113.2\n"
    )
    mcast, ucast, group, *pings = cf.media
    assert isinstance(mcast, McastMedium) and (mcast.group, mcast.ttl, mcast.loop) == (
        "239.0.0.1",
        1,
        False,
    )
    assert isinstance(ucast, UcastMedium) and ucast.peer == "198.51.100.2"
    assert isinstance(group, PingGroupMedium) and group.hosts == ("198.51.100.1", "198.51.100.254")
    assert [p.name for p in pings] == ["203.0.113.1", "203.0.113.2"]


def test_mcast_ttl_4_is_the_maximum_heartbeat_accepts() -> None:
    assert not hacf("mcast eth0 239.0.0.1 694 4 1\n").diagnostics
    assert "bad ttl [5]" in hacf("mcast eth0 239.0.0.1 694 5 1\n").diagnostics[0].message


def test_ucast_extra_peers_are_ignored_with_a_warning() -> None:
    cf = hacf("ucast eth0 198.51.100.2 198.51.100.3\n")
    assert len(cf.media) == 1
    assert cf.diagnostics[0].severity == "warning"


def test_obsolete_udp_directive_is_bcast_with_a_warning() -> None:
    cf = hacf("udp eth0\n")
    assert isinstance(cf.media[0], BcastMedium)
    assert "obsolete" in cf.diagnostics[0].message


def test_unknown_directive_suggests_the_closest_one() -> None:
    (d,) = hacf("autofailback on\n").diagnostics
    assert d.message == "Illegal directive [autofailback] in ha.cf (did you mean auto_failback?)"


@pytest.mark.parametrize(
    "line",
    ["realtime off", "memreserve 6500", "coredumps true", "compression zlib", "apiauth ipfail "
     "uid=hacluster", "env FOO=bar", "uuidfrom nodename", "hbgenmethod time", "msgfmt netstring",
     "conn_logd_time 60", "log_badpack no", "rtprio 5", "coreroot /var/lib/heartbeat/cores",
     "use_apphbd no", "quorum_server q1", "crm off", "record_config_changes on",
     "traditional_compression no", "compression_threshold 2", "max_rexmit_delay 250",
     "watchdog /dev/watchdog", "debug 1", "autojoin none", "stonith_host * null alpha beta",
     "respawn hacluster /usr/lib/heartbeat/ipfail", "failfast hacluster /bin/true"],
)  # fmt: skip
def test_every_heartbeat_directive_is_accepted(line: str) -> None:
    cf = hacf(line + "\n")
    assert [d for d in cf.diagnostics if d.severity == "error"] == []


def test_parameters_record_values_as_written_and_derived_values(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, "deadtime 9\nkeepalive 500ms\n" + BASE.split("\n", 2)[2])
    params = load_config(d, node="alpha").config.parameters
    assert params["deadtime"] == "9" and params["keepalive"] == "500ms"
    assert params["warntime"] == "4500ms"  # deadtime/2, as Heartbeat writes it back
    assert params["initdead"] == "18000ms"  # 2*deadtime when 6s <= deadtime <= 10s
    assert params["deadping"] == "9000ms"
    assert params["udpport"] == "694"


def test_missing_auto_failback_means_legacy_with_heartbeats_warning(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, "bcast eth0\nnode alpha\n")
    loaded = load_config(d, node="alpha")
    assert loaded.config.auto_failback is AutoFailback.LEGACY
    assert any("Deprecated 'legacy' auto_failback" in w.message for w in loaded.warnings)


def test_nice_failback_after_auto_failback_forces_off() -> None:
    cf = hacf("auto_failback on\nnice_failback on\n")
    assert cf.auto_failback is AutoFailback.OFF
    assert cf.parameters["auto_failback"] == "off"


def test_nice_failback_alone_means_legacy() -> None:
    cf = hacf("nice_failback on\n")
    assert cf.auto_failback is AutoFailback.LEGACY


def test_duplicate_node_lines_only_warn(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, BASE + "node alpha\n")
    loaded = load_config(d, node="alpha")
    assert any("declared more than once" in w.message for w in loaded.warnings)


def test_warntime_not_below_deadtime_warns(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, BASE + "warntime 10\n")
    warnings = [w.message for w in load_config(d, node="alpha").warnings]
    assert any(m.startswith("warntime: 10s is not below deadtime (10s)") for m in warnings)


def test_initdead_below_ten_seconds_warns_as_heartbeat_does(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, BASE.replace("deadtime 10", "deadtime 3") + "initdead 5\n")
    (warning,) = [w for w in load_config(d, node="alpha").warnings if "initdead" in w.message]
    assert warning.line == 6
    assert warning.message.startswith("initdead: 5s is very low")


def test_initdead_default_is_derived_from_deadtime(tmp_path: Path) -> None:
    for deadtime, initdead in (("30", 30000), ("10", 20000), ("5", 12000)):
        d = write_legacy(tmp_path, BASE.replace("deadtime 10", f"deadtime {deadtime}"))
        assert load_config(d, node="alpha").config.timing.initdead == initdead


def test_local_node_comes_from_nodeinfo_then_uname(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, BASE)
    (d / "nodeinfo").write_text("BETA\nignored\n")
    assert load_config(d).node == "beta"
    assert load_config(d, node="Alpha").node == "alpha"


def test_path_to_ha_cf_itself_is_accepted(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, BASE)
    assert load_config(d / "ha.cf", node="alpha").config.origin == str(d)


def test_every_error_is_reported_not_only_the_first(tmp_path: Path) -> None:
    d = write_legacy(
        tmp_path,
        "keepalive x\nbcast eth0\nnode alpha\nfoo 1\n",
        authkeys="auth 1\n1 md5\n",
        haresources="beta 198.51.100.10\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(d, node="alpha")
    assert messages(info.value, d) == [
        "authkeys:2: Auth method [md5] requires a key",
        "ha.cf:1: keepalive: bad time [x] (examples: 2, 1.5, 500ms)",
        "ha.cf:4: Illegal directive [foo] in ha.cf",
        "haresources:1: Bad nodename in haresources [beta] (declared nodes: alpha)",
    ]


def test_host_facts_are_warnings_by_default_and_errors_when_strict(tmp_path: Path) -> None:
    d = write_legacy(
        tmp_path,
        BASE.replace("bcast eth0", "bcast pulse-no-such0"),
        haresources="alpha 198.51.100.10 no-such-script\n",
    )
    loaded = load_config(d, node="alpha")
    found = [str(w) for w in loaded.warnings]
    assert any("interface [pulse-no-such0] does not exist" in w for w in found)
    assert any("cannot locate resource script [no-such-script]" in w for w in found)
    with pytest.raises(ConfigError) as info:
        load_config(d, node="alpha", strict_host=True)
    assert {x.line for x in info.value.diagnostics} == {1, 3}


def test_resource_scripts_are_found_in_resource_d(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, BASE.replace("eth0", "lo"), haresources="alpha myapp\n")
    (d / "resource.d").mkdir()
    (d / "resource.d" / "myapp").write_text("#!/bin/sh\n")
    (d / "resource.d" / "myapp").chmod(0o755)
    assert load_config(d, node="alpha", strict_host=True).warnings == ()


def test_stonith_reads_the_first_non_comment_line_of_its_file(tmp_path: Path) -> None:
    params = tmp_path / "stonith.cfg"
    params.write_text("# comment\nhostlist=alpha beta\nsecond line\n")
    cf = hacf(f"stonith external/ssh {params}\n")
    (st,) = cf.stonith
    assert (st.type, st.params, st.params_file) == (
        "external/ssh",
        "hostlist=alpha beta",
        str(params),
    )


def test_missing_stonith_file_is_a_host_fact(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, BASE.replace("eth0", "lo") + "stonith null /nonexistent/file\n")
    loaded = load_config(d, node="alpha")
    assert any("cannot read parameter file" in w.message for w in loaded.warnings)


# --------------------------------------------------------------------------- authkeys


def test_authkeys_lists_several_keys_and_signs_with_auth_n() -> None:
    keys, diags = parse_authkeys(b"auth 2\n1 crc\n2 sha1 s3cret\n3 md5 other\n", "authkeys")
    assert not diags and keys is not None
    assert keys.outbound == 2 and keys.outbound_key.key == b"s3cret"
    assert [k.method.value for k in keys.keys] == ["crc", "sha1", "md5"]


def test_authkeys_key_is_a_single_word_like_heartbeat() -> None:
    keys, diags = parse_authkeys(b"auth 1\n1 sha1 two words\n", "authkeys")
    assert keys is not None and keys.outbound_key.key == b"two"
    assert diags[0].severity == "warning"


def test_authkeys_accepts_pulse_sha256() -> None:
    keys, _ = parse_authkeys(b"auth 1\n1 sha256 k\n", "authkeys")
    assert keys is not None and keys.outbound_key.method == "sha256"


@pytest.mark.parametrize(
    ("mode", "ok"),
    [(0o600, True), (0o700, True), (0o622, True), (0o640, False), (0o604, False), (0o644, False)],
)
def test_authkeys_permission_rule(mode: int, ok: bool, tmp_path: Path) -> None:
    d = write_legacy(tmp_path, BASE, authkeys_mode=mode)
    if ok:
        load_config(d, node="alpha")
        return
    with pytest.raises(ConfigError) as info:
        load_config(d, node="alpha")
    assert (
        str(info.value)
        == f"{d}/authkeys: Bad permissions on keyfile [{d}/authkeys], 600 recommended."
    )


# --------------------------------------------------------------------------- haresources


def hr(text: str):  # type: ignore[no-untyped-def]
    return parse_haresources(text.encode(), "haresources")


def test_backslash_joins_lines_with_nothing_inserted() -> None:
    groups, _ = hr("alpha 198.51.100.10 ht\\\ntpd \\\n   smb\n")
    assert [r.raw for r in groups[0].resources] == ["198.51.100.10", "httpd", "smb"]


def test_comment_after_backslash_removes_the_continuation() -> None:
    # "a \\ # note" loses its comment first; the line then ends in a space, not a
    # backslash, so it does not continue and the backslash becomes a resource word.
    groups, _ = hr("alpha 198.51.100.10 \\ # note\nbeta smb\n")
    assert [(g.node, [r.raw for r in g.resources]) for g in groups] == [
        ("alpha", ["198.51.100.10", "\\"]),
        ("beta", ["smb"]),
    ]


def test_comment_on_a_continuation_line_is_not_removed() -> None:
    groups, _ = hr("alpha 198.51.100.10 \\\n httpd # web\n")
    assert [r.raw for r in groups[0].resources] == ["198.51.100.10", "httpd", "#", "web"]


def test_group_line_number_is_where_the_logical_line_starts() -> None:
    groups, _ = hr("# c\n\nalpha a \\\n b\nbeta c\n")
    assert [g.source.line for g in groups] == [3, 5]  # type: ignore[union-attr]


def test_dotted_word_is_an_implicit_ipaddr() -> None:
    groups, _ = hr("Alpha 10.0.0.5/24/eth0 httpd\n")
    ip, httpd = groups[0].resources
    assert groups[0].node == "alpha"
    assert (ip.agent, ip.args) == ("IPaddr", ("10.0.0.5/24/eth0",))
    assert (httpd.agent, httpd.args) == ("httpd", ())


def test_ipaddr_with_cidr_interface_and_broadcast() -> None:
    groups, _ = hr("alpha IPaddr::198.51.100.3/28/eth0/198.51.100.15\n")
    (spec,) = groups[0].resources
    assert (spec.agent, spec.args) == ("IPaddr", ("198.51.100.3/28/eth0/198.51.100.15",))
    assert groups[0].key == "IPaddr::198.51.100.3/28/eth0/198.51.100.15"


def test_mailto_arguments_split_on_double_colon() -> None:
    groups, _ = hr("alpha MailTo::a@example.com,b@example.com::Subject\n")
    (spec,) = groups[0].resources
    assert (spec.agent, spec.args) == ("MailTo", ("a@example.com,b@example.com", "Subject"))


def test_filesystem_with_three_arguments() -> None:
    groups, _ = hr("alpha Filesystem::/dev/sda1::/data1::ext2\n")
    assert groups[0].resources[0].args == ("/dev/sda1", "/data1", "ext2")


def test_missing_haresources_is_a_warning_in_pulse(tmp_path: Path) -> None:
    d = write_legacy(tmp_path, BASE)
    loaded = load_config(d, node="alpha")
    assert loaded.config.groups == ()
    assert any("no haresources file" in w.message for w in loaded.warnings)


def test_respawn_ipfail_turns_the_built_in_ipfail_on_without_heartbeats_binary(
    tmp_path: Path,
) -> None:
    text = "bcast eth0\nnode alpha beta\nauto_failback on\nping 198.51.100.254\n"
    d = write_legacy(tmp_path, text + "respawn hacluster /nonexistent/lib/heartbeat/ipfail\n")
    loaded = load_config(d, node="alpha")
    assert loaded.config.ipfail
    assert not [w for w in loaded.warnings if "ipfail" in w.message]
    plain = write_legacy(tmp_path, text)
    assert not load_config(plain, node="alpha").config.ipfail


def test_ipfail_without_ping_nodes_is_a_warning_on_its_respawn_line(tmp_path: Path) -> None:
    text = "bcast eth0\nnode alpha beta\nauto_failback on\n"
    d = write_legacy(tmp_path, text + "respawn hacluster /usr/lib/heartbeat/ipfail\n")
    (w,) = [w for w in load_config(d, node="alpha").warnings if "ipfail" in w.message]
    assert w.line == 4
    assert "add `ping ROUTER`" in w.message
