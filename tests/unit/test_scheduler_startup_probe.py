"""The start-up probe in the pure scheduler (docs/resources.md#start-up-probe): a node
that comes up plans nothing until it knows what already runs here; a group found
running here that another node holds is stopped here, one that is its own is kept."""

from __future__ import annotations

from scheduler_harness import Cluster, make_config

from pulse.config.model import AutoFailback
from pulse.failover.policy import Acquire, GroupState, Release, Scheduler


def boot_probing(cluster: Cluster, name: str) -> Scheduler:
    """Start *name* as the manager does: the probe is pending when comms come up."""
    sched = Scheduler(config=cluster.config, local=name, now=cluster.now)
    sched.probe_pending()
    cluster.nodes[name] = sched
    cluster.alive.add(name)
    for other in cluster.alive - {name}:
        sched.node_status(other, True, cluster.now)
        cluster.apply(other, cluster.nodes[other].node_status(name, True, cluster.now))
    cluster.apply(name, sched.comms_up(cluster.now))
    return sched


def test_nothing_is_acquired_while_the_start_up_probe_runs() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}))
    prime = boot_probing(cluster, "prime")
    cluster.advance(30)
    assert prime.stable
    assert prime.mine["web"].state is GroupState.STOPPED
    assert cluster.acquisitions() == []
    cluster.apply("prime", prime.probed([], cluster.now))
    assert cluster.holders() == {"web": "prime"}


def test_a_group_found_running_here_that_a_peer_holds_is_stopped_here_and_said_so() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}, AutoFailback.OFF))
    cluster.start("calc")
    assert cluster.holders() == {"web": "calc"}
    prime = boot_probing(cluster, "prime")
    cluster.advance(1)
    # prime's copy is not a claim: calc keeps running it, nobody acquires.
    cluster.apply("prime", prime.probed(["web"], cluster.now))
    releases = [(n, a) for _, n, a in cluster.journal if isinstance(a, Release)]
    assert releases == [
        (
            "prime",
            Release("web", "found web running here while calc holds it: stopping the local copy"),
        )
    ]
    assert "found web running here while calc holds it: stopped the local copy" in (
        cluster.decisions("prime")
    )
    assert cluster.holders() == {"web": "calc"}
    assert [n for _, n, _ in cluster.acquisitions()] == ["calc"]
    assert "prime" not in cluster.nodes["calc"].claimants("web")


def test_a_stray_copy_is_stopped_before_auto_failback_brings_the_group_home() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}))
    cluster.start("calc")
    prime = boot_probing(cluster, "prime")
    cluster.advance(1)
    cluster.apply("prime", prime.probed(["web"], cluster.now))
    kinds = [
        (n, type(a).__name__) for _, n, a in cluster.journal if isinstance(a, Acquire | Release)
    ]
    # calc's first start, prime stops its copy, calc fails it back, prime starts it.
    assert kinds == [
        ("calc", "Acquire"),
        ("prime", "Release"),
        ("calc", "Release"),
        ("prime", "Acquire"),
    ]
    assert cluster.holders() == {"web": "prime"}


def test_a_group_found_running_on_its_restarted_holder_is_kept_without_a_release() -> None:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime", "db": "calc"}))
    cluster.start("calc")
    prime = boot_probing(cluster, "prime")
    cluster.kill("calc")  # only prime is left; it finds web running (restarted hard)
    cluster.journal.clear()
    cluster.advance(1)
    cluster.apply("prime", prime.probed(["web"], cluster.now))
    assert [a for _, _, a in cluster.journal if isinstance(a, Release)] == []
    acquired = {a.group: a.reason for _, _, a in cluster.journal if isinstance(a, Acquire)}
    assert acquired["web"] == "acquiring web: it already runs here (start-up probe)"
    assert cluster.holders() == {"web": "prime", "db": "prime"}
    assert "start-up probe: found web running here" in cluster.decisions("prime")
