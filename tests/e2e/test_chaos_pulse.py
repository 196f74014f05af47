"""75 s of seeded random faults against two pulse nodes (bench/chaos, seed 39): no
daemon crashes, every fault converges, and the floating IP is never on both nodes for
longer than the documented bound once a fault has ended (docs/reliability.md).

Seed 39's first faults (`bench/chaos --seed 39 --list`): n1's link down on its own side,
SIGSTOP of n2, CPU starvation of the holder, n1's link down on the switch side, n2
dropping n1's heartbeats for 1.8 s, a partition of the holder, SIGSTOP of the holder,
50 % loss, n2 dropping n1's heartbeats for 0.7 s, SIGKILL and restart of the holder.
Before the fixes of issue 9 (main at 71ef18b) a one-way drop of about a second left
both nodes holding the VIP (5 of 5 trials of `bench/chaos --scenario oneway`), and a node
resumed after SIGSTOP declared its running peer dead (6 of 6 freezes in two runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pulse_lab.netns import netns_available

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "chaos"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("chaos") / "chaos.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--daemons", "pulse", "--seed", "39", "--minutes", "1.25",
         "--json", str(out)],
        capture_output=True, text=True, timeout=420, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    document: dict[str, Any] = json.loads(out.read_text())
    assert document["complete"] and document["totals"]["pulse"]["faults"] >= 8
    return document


def test_no_pulse_daemon_crashes_under_a_minute_of_random_faults(run: dict[str, Any]) -> None:
    assert run["totals"]["pulse"]["crashes"] == 0
    assert [a for a in run["anomalies"] if "Traceback" in a["line"]] == []


def test_every_fault_of_the_minute_converges_to_one_agreed_holder(run: dict[str, Any]) -> None:
    stuck = [
        (o["index"], o["fault"]["what"], o["not_converged_because"])
        for o in run["outcomes"]
        if not o["converged"]
    ]
    assert stuck == []


def test_the_vip_is_on_two_nodes_no_longer_than_the_bound_after_each_fault(
    run: dict[str, Any],
) -> None:
    bound = run["timers"]["bound_s"]
    over = [
        (o["index"], o["fault"]["what"], o["longest_dual_after_s"])
        for o in run["outcomes"]
        if o["longest_dual_after_s"] > bound
    ]
    assert over == []
