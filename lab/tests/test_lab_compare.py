"""Pure parts of the comparison benchmark's lab: VRRP timing, keepalived.conf, /proc."""

from __future__ import annotations

import pytest

from pulse_lab.keepalived import VrrpInstance, advert_for_detection, master_down_interval
from pulse_lab.procstat import (
    CLOCK_TICKS,
    account,
    children_map,
    descendants_of,
    parse_rss_kib,
    parse_stat,
)


def test_master_down_interval_is_three_adverts_plus_the_backups_skew() -> None:
    assert master_down_interval(1.0, 100) == pytest.approx(3 + 156 / 256)
    assert master_down_interval(0.1, 254) == pytest.approx(0.3 + 0.2 / 256)


def test_advert_interval_matches_a_heartbeat_deadtime_in_whole_centiseconds() -> None:
    assert advert_for_detection(3.0, 100) == 0.83
    assert advert_for_detection(0.5, 100) == 0.14
    assert master_down_interval(0.14, 100) == pytest.approx(0.505, abs=0.001)


def test_advert_interval_never_drops_below_one_centisecond() -> None:
    assert advert_for_detection(0.001, 100) == 0.01


def test_advert_interval_refuses_a_priority_no_backup_can_have() -> None:
    with pytest.raises(ValueError, match=r"1\.\.254"):
        advert_for_detection(3.0, 255)


def test_keepalived_conf_is_vrrp_version_3_unicast_with_the_virtual_ip_on_the_interface() -> None:
    text = VrrpInstance(
        name="prime",
        interface="eth0",
        address="198.51.100.11",
        peers=("198.51.100.12",),
        vip="198.51.100.100/24",
        priority=200,
        advert_s=0.14,
        initial_master=True,
    ).render()
    assert "vrrp_version 3" in text and "    version 3\n" in text
    assert "    state MASTER\n" in text and "    priority 200\n" in text
    assert "    advert_int 0.14\n" in text
    assert "unicast_src_ip 198.51.100.11" in text and "        198.51.100.12\n" in text
    assert "        198.51.100.100/24 dev eth0\n" in text
    assert "nopreempt" not in text
    assert text.count("{") == text.count("}")


def test_proc_stat_fields_are_counted_after_the_last_parenthesis_of_the_name() -> None:
    line = "4242 (we ird) (x)) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 1 0 9 1 1\n"
    stat = parse_stat(line)
    assert (stat.pid, stat.ppid, stat.ticks) == (4242, 17, 325)


def test_rss_is_vmrss_in_kib_and_zero_without_one() -> None:
    assert parse_rss_kib("Name:\tpulse\nVmRSS:\t   47104 kB\nThreads:\t1\n") == 47104
    assert parse_rss_kib("Name:\tkthreadd\n") == 0


def test_descendants_follow_the_whole_process_tree_below_the_root() -> None:
    stats = [
        parse_stat(f"{pid} (p) S {ppid} 0 0 0 0 0 0 0 0 0 0 0 0 0")
        for pid, ppid in ((10, 1), (11, 10), (12, 11), (13, 10), (20, 1))
    ]
    assert descendants_of(10, children_map(stats)) == [11, 13, 12]


def test_cpu_counts_each_process_from_its_first_to_its_last_sample() -> None:
    t = CLOCK_TICKS
    samples = [
        (0.0, {1: (100, 1000)}),
        (30.0, {1: (100 + t, 1000), 2: (50, 500)}),  # 2 appears: counted from here
        (60.0, {1: (100 + 2 * t, 1200)}),  # 2 is gone: its last sample counts
    ]
    cost = account(samples)
    assert cost.seconds == 60.0
    assert cost.cpu_seconds == pytest.approx(2.0)
    assert cost.cpu_seconds_per_minute == pytest.approx(2.0)
    assert cost.rss_kib_max == 1500 and cost.processes == 2


def test_accounting_needs_two_samples() -> None:
    with pytest.raises(ValueError, match="two samples"):
        account([(0.0, {})])
