"""The scheduler's side of monitoring (docs/resources.md#recovery): a monitor's move,
a restart that cannot stop, maintenance mode and cleanup, cluster-wide."""

from __future__ import annotations

import pytest
from scheduler_harness import Cluster, make_config

from pulse.failover.policy import Acquire, Cleanup, GroupState, Maintenance, Release, Send


def two_nodes() -> Cluster:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"}))
    cluster.start("prime")
    cluster.start("calc")
    return cluster


def test_a_monitor_move_releases_the_group_here_and_the_peer_takes_it() -> None:
    cluster = two_nodes()
    prime = cluster.nodes["prime"]
    cluster.apply("prime", prime.monitor_failed("web", cluster.now, "web failed 3 times"))
    assert cluster.holders() == {"web": "calc", "db": "calc"}
    assert "web" in prime.failed_here
    assert "web failed 3 times; offering it to the other nodes" in cluster.decisions("prime")


def test_a_monitor_move_of_a_group_not_running_here_does_nothing() -> None:
    cluster = two_nodes()
    assert cluster.nodes["prime"].monitor_failed("db", cluster.now, "db failed") == []


def test_a_restart_that_cannot_stop_leaves_the_group_failed_and_claimed_here() -> None:
    cluster = two_nodes()
    prime = cluster.nodes["prime"]
    cluster.apply("prime", prime.restart_failed("web", cluster.now, "stop of web failed"))
    assert prime.mine["web"].state is GroupState.FAILED
    assert cluster.holders()["web"] == "prime"  # nobody else starts it
    assert any("needs an administrator (pulsectl cleanup)" in d for d in cluster.decisions("prime"))


def test_maintenance_reaches_every_node_and_a_dead_node_is_not_taken_over() -> None:
    cluster = two_nodes()
    actions = cluster.nodes["calc"].set_maintenance(True, cluster.now)
    assert isinstance(actions[0], Send)
    assert Maintenance(True) in actions
    cluster.apply("calc", actions)
    assert cluster.nodes["prime"].maintenance and cluster.nodes["calc"].maintenance
    cluster.kill("prime")
    cluster.advance(60)
    assert cluster.nodes["calc"].mine["web"].state is GroupState.STOPPED
    cluster.apply("calc", cluster.nodes["calc"].set_maintenance(False, cluster.now))
    assert cluster.holders() == {"web": "calc", "db": "calc"}


def test_leaving_maintenance_moves_nothing_that_runs_in_the_right_place() -> None:
    cluster = two_nodes()
    prime = cluster.nodes["prime"]
    cluster.apply("prime", prime.set_maintenance(True, cluster.now))
    before = len(cluster.journal)
    cluster.apply("prime", prime.set_maintenance(False, cluster.now))
    changed = [a for _, _, a in cluster.journal[before:] if not isinstance(a, Send)]
    assert not [a for a in changed if isinstance(a, Release | Acquire)]


def test_a_node_in_maintenance_counts_as_released_when_it_stops() -> None:
    cluster = two_nodes()
    prime = cluster.nodes["prime"]
    cluster.apply("prime", prime.set_maintenance(True, cluster.now))
    prime.shutdown(cluster.now)
    assert prime.is_released()  # it leaves everything as it is
    assert prime.mine["web"].state is GroupState.RUNNING


def test_cleanup_forgets_a_move_on_every_node_and_auto_failback_returns_the_group() -> None:
    cluster = two_nodes()
    prime = cluster.nodes["prime"]
    cluster.apply("prime", prime.monitor_failed("web", cluster.now, "web failed"))
    assert cluster.holders()["web"] == "calc"
    actions = cluster.nodes["calc"].cleanup("web", cluster.now)
    assert Cleanup(("web",)) in actions
    cluster.apply("calc", actions)
    assert "web" not in prime.failed_here
    assert cluster.holders() == {"web": "prime", "db": "calc"}


def test_cleanup_of_a_failed_group_stops_it_first_then_the_plan_decides() -> None:
    cluster = two_nodes()
    prime = cluster.nodes["prime"]
    cluster.apply("prime", prime.restart_failed("web", cluster.now, "stop of web failed"))
    cluster.apply("prime", prime.cleanup("all", cluster.now))
    releases = [a for _, n, a in cluster.journal if n == "prime" and isinstance(a, Release)]
    assert releases[-1].reason == "cleanup: stopping whatever still runs of web here"
    assert cluster.holders() == {"web": "prime", "db": "calc"}


def test_cleanup_of_an_unknown_group_is_refused() -> None:
    cluster = two_nodes()
    with pytest.raises(ValueError, match="unknown group 'nginx'"):
        cluster.nodes["prime"].cleanup("nginx", cluster.now)


def test_a_node_starting_during_maintenance_learns_it_from_the_reports_and_takes_nothing() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"}))
    cluster.start("prime")
    prime = cluster.nodes["prime"]
    cluster.apply("prime", prime.set_maintenance(True, cluster.now))
    cluster.start("calc")
    calc = cluster.nodes["calc"]
    assert calc.maintenance
    assert "maintenance mode on (prime): nothing is started, stopped or monitored; " in (
        " ".join(cluster.decisions("calc"))
    )
    assert any(isinstance(a, Maintenance) and a.on for _, n, a in cluster.journal if n == "calc")
    cluster.advance(30)
    assert cluster.holders() == {"web": "prime", "db": "prime"}  # db is not failed back
    assert calc.view().maintenance
    cluster.apply("calc", calc.set_maintenance(False, cluster.now))
    assert not prime.maintenance
    assert cluster.holders() == {"web": "prime", "db": "calc"}


def test_a_stale_report_never_switches_maintenance_on_again_on_a_stable_node() -> None:
    cluster = two_nodes()
    calc = cluster.nodes["calc"]
    report = cluster.nodes["prime"].report()
    stale = type(report)(
        claimed=report.claimed, refused=report.refused, failed=report.failed,
        keeping=report.keeping, takeovers=report.takeovers, stable=True, leaving=False,
        maintenance=True,
    )  # fmt: skip
    msg = stale.message(calc.groups, "prime").with_field("src", "prime")
    cluster.apply("calc", calc.message(msg, cluster.now))
    assert not calc.maintenance


def test_a_group_whose_restart_could_not_stop_is_never_started_by_a_live_peer() -> None:
    cluster = two_nodes()
    prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
    cluster.apply("prime", prime.restart_failed("web", cluster.now, "stop of web failed"))
    cluster.apply("calc", calc.takeover("all", cluster.now))  # calc even asks for web
    cluster.advance(60)
    assert prime.mine["web"].state is GroupState.FAILED
    assert calc.mine["web"].state is GroupState.STOPPED
    assert calc.holder("web") == "prime"
    # Should prime die, calc's manager fences it before taking web over (may_hold).
    assert calc.may_hold("prime")


def test_a_node_stopping_with_a_failed_group_keeps_it_held_until_it_is_declared_dead() -> None:
    cluster = two_nodes()
    prime, calc = cluster.nodes["prime"], cluster.nodes["calc"]
    cluster.apply("prime", prime.restart_failed("web", cluster.now, "stop of web failed"))
    cluster.apply("prime", prime.shutdown(cluster.now))
    assert prime.is_released()
    cluster.broadcast("prime", prime.shutdone_message())
    cluster.advance(30)
    # calc does not start web on the shutdone: prime's failed stop may have left it
    # running, so calc waits for prime's death, which its manager fences first.
    assert calc.mine["web"].state is GroupState.STOPPED
    assert calc.mine["db"].state is GroupState.RUNNING
    assert calc.may_hold("prime")
    cluster.kill("prime")
    assert cluster.holders() == {"web": "calc", "db": "calc"}


def test_a_node_stopping_after_a_clean_release_leaves_nothing_held() -> None:
    cluster = two_nodes()
    cluster.stop("prime")
    assert not cluster.nodes["calc"].may_hold("prime")
    assert cluster.holders() == {"web": "calc", "db": "calc"}
