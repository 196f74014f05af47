"""Fail counts travel in the ``resource`` reports (``pulse_fail_counts``), so that every
node's status shows each node's counts (docs/resources.md#cleanup-and-maintenance)."""

from __future__ import annotations

from scheduler_harness import Cluster, make_config

from pulse.failover.policy import Send
from pulse.failover.report import Report, format_fail_counts, parse_fail_counts
from pulse.wire.message import Message

NOTHING = frozenset[str]()


def report(**more: object) -> Report:
    return Report(
        claimed=NOTHING, refused=NOTHING, failed=NOTHING, keeping=NOTHING, takeovers=NOTHING,
        stable=True, leaving=False, **more,  # type: ignore[arg-type]
    )  # fmt: skip


def two_nodes() -> Cluster:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"}))
    cluster.start("prime")
    cluster.start("calc")
    return cluster


def reports_sent(cluster: Cluster, name: str, since: int) -> list[Message]:
    return [
        a.message
        for _, n, a in cluster.journal[since:]
        if n == name and isinstance(a, Send) and a.message.type == "resource"
    ]


def test_a_report_with_no_failures_is_what_pulse_sent_before_the_field_existed() -> None:
    plain = report().message({}, "prime")
    assert "pulse_fail_counts" not in plain
    assert report(fail_counts=()).message({}, "prime") == plain


def test_a_report_carries_each_resource_s_count_and_the_count_follows_the_last_equals_sign() -> (
    None
):
    counts = (("apache2", 2), ("ocf:heartbeat:Dummy::state=/run/x", 1))
    msg = report(fail_counts=counts).message({}, "prime")
    assert msg.get("pulse_fail_counts") == "apache2=2 ocf:heartbeat:Dummy::state=/run/x=1"
    assert parse_fail_counts(msg.get("pulse_fail_counts")) == dict(counts)
    assert format_fail_counts(()) == ""


def test_words_that_are_not_a_resource_and_a_positive_count_are_skipped() -> None:
    assert parse_fail_counts("apache2=x =3 db=0 db=-1 web 2 web=2") == {"web": 2}
    assert parse_fail_counts(None) == parse_fail_counts("") == {}


def test_a_count_that_int_would_refuse_is_skipped_not_raised() -> None:
    # "²" passes str.isdigit(); 5000 digits pass it too and exceed int()'s limit.
    assert parse_fail_counts(f"web=\u00b2 db={'9' * 5000} app=1234567890 ok=7") == {"ok": 7}


def test_a_change_of_fail_counts_is_announced_at_once_and_the_peer_keeps_them() -> None:
    cluster = two_nodes()
    prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
    before = len(cluster.journal)
    cluster.apply("prime", prime.set_fail_counts({"web": 1, "db": 0}))
    (sent,) = reports_sent(cluster, "prime", before)
    assert sent.get("pulse_fail_counts") == "web=1"
    assert calc.peers["prime"].fail_counts == {"web": 1}
    assert prime.set_fail_counts({"web": 1}) == []  # unchanged: nothing sent

    cluster.apply("prime", prime.set_fail_counts({}))  # cleanup: back to Heartbeat's report
    assert "pulse_fail_counts" not in reports_sent(cluster, "prime", before)[-1]
    assert calc.peers["prime"].fail_counts == {}


def test_fail_counts_ride_on_every_later_report_too() -> None:
    cluster = two_nodes()
    prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
    cluster.apply("prime", prime.set_fail_counts({"web": 3}))
    cluster.apply("prime", prime.monitor_failed("web", cluster.now, "web failed 3 times"))
    assert cluster.holders()["web"] == "calc"
    assert calc.peers["prime"].fail_counts == {"web": 3}


def test_a_peer_s_counts_are_forgotten_when_it_dies_and_when_it_starts_again() -> None:
    cluster = two_nodes()
    cluster.apply("prime", cluster.nodes["prime"].set_fail_counts({"web": 2}))
    calc = cluster.nodes["calc"]
    assert calc.peers["prime"].fail_counts == {"web": 2}
    cluster.kill("prime")
    assert calc.peers["prime"].fail_counts == {}

    cluster.start("prime")
    cluster.apply("prime", cluster.nodes["prime"].set_fail_counts({"web": 1}))
    assert calc.peers["prime"].fail_counts == {"web": 1}
    # A restart whose death calc never saw (within deadtime): its "starting" message.
    starting = Message.of(("t", "starting"), ("src", "prime"))
    cluster.apply("calc", calc.message(starting, cluster.now))
    assert calc.peers["prime"].fail_counts == {}
