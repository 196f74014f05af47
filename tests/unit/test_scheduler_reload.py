"""Groups added by a reload (SIGHUP, pulse.reload): each starts once, on the node the usual
rules name, whichever node reloads first (scheduler_harness: Scheduler instances, pure)."""

from __future__ import annotations

import dataclasses

from scheduler_harness import Cluster, make_config

from pulse.config.model import ResourceGroup
from pulse.failover.policy import RQSTDELAY, Acquire


def reload(cluster: Cluster, node: str, added: dict[str, str]) -> None:
    """*node* reloads a configuration with *added* groups (key -> preferred node)."""
    new = make_config(cluster.config.nodes, added)
    groups: tuple[ResourceGroup, ...] = new.groups
    known = {g.key for g in cluster.config.groups}
    if not known >= set(added):
        cluster.config = dataclasses.replace(cluster.config, groups=cluster.config.groups + groups)
    cluster.apply(node, cluster.nodes[node].add_groups(groups, cluster.now))


def pair() -> Cluster:
    cluster = Cluster(make_config(["prime", "calc"], {"web": "prime"}))
    cluster.start("prime")
    cluster.start("calc")
    return cluster


def test_a_group_added_on_both_nodes_starts_on_its_preferred_node() -> None:
    cluster = pair()
    reload(cluster, "prime", {"mail": "calc"})
    assert cluster.holders() == {"web": "prime", "mail": None}  # calc does not know it yet
    reload(cluster, "calc", {"mail": "calc"})
    assert cluster.holders() == {"web": "prime", "mail": "calc"}
    assert "configuration reloaded: new group(s) mail" in cluster.decisions("calc")


def test_the_node_reloading_second_does_not_start_what_the_first_already_runs() -> None:
    cluster = pair()
    reload(cluster, "prime", {"mail": "prime"})
    assert cluster.holders()["mail"] == "prime"
    cluster.now = 5.0
    reload(cluster, "calc", {"mail": "prime"})
    assert cluster.holders() == {"web": "prime", "mail": "prime"}
    assert [a for a in cluster.acquisitions() if a[2] == "mail"] == [(0.0, "prime", "mail")]


def test_a_new_group_preferring_a_node_that_reloads_later_moves_there_under_auto_failback() -> None:
    # prime reloads first and is the only one to know mail, preferred by calc: it waits
    # for calc's answer, and calc (not reloaded yet) can run it, so prime does not.
    cluster = pair()
    reload(cluster, "prime", {"mail": "calc"})
    assert cluster.holders()["mail"] is None
    cluster.kill("calc")
    assert cluster.holders()["mail"] == "prime"  # calc is gone: prime runs it


def test_new_groups_wait_for_a_silent_peer_at_most_rqstdelay() -> None:
    cluster = pair()
    cluster.cut("calc", "prime", both=False)  # prime hears nothing from calc
    reload(cluster, "prime", {"mail": "prime"})
    assert cluster.holders()["mail"] is None
    assert "mail is new: waiting for the other nodes' reports" in cluster.decisions("prime")
    assert cluster.nodes["prime"].next_deadline() == RQSTDELAY
    cluster.advance(RQSTDELAY)
    assert cluster.holders()["mail"] == "prime"


def test_a_reload_without_new_groups_plans_nothing() -> None:
    cluster = pair()
    before = len(cluster.journal)
    existing = cluster.config.groups
    cluster.apply("prime", cluster.nodes["prime"].add_groups(existing, cluster.now))
    assert len(cluster.journal) == before
    assert not any(isinstance(a, Acquire) for _, _, a in cluster.journal[before:])
