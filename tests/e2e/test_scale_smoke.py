"""bench/scale --quick runs end to end: 8 pulse nodes in namespaces on one bridge.

Only what does not depend on the machine's load is asserted: the JSON is well formed,
no node was declared dead while the cluster idled, the holder's failure was taken
over, and the packets on the wire follow Heartbeat's rule (a status per node per
keepalive and an ACK for one message in ten of each peer) within a wide margin. The
figures themselves are in docs/performance.md.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pulse_lab.netns import netns_available

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _run_quick(out: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(BENCH), "--quick", "--json", str(out)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=400, check=False)


def test_quick_scale_benchmark_idles_without_false_deaths_and_fails_over(tmp_path: Path) -> None:
    if (reason := netns_available()) is not None:
        pytest.skip(reason)
    out = tmp_path / "scale.json"
    done = _run_quick(out)
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(out.read_text())
    [run] = document["runs"]
    assert (run["nodes"], run["medium"], run["keepalive_ms"]) == (8, "bcast", 100)
    assert run["errors"] == []
    idle = run["idle"]
    assert idle["false_deaths"] == []
    assert all(_number(idle["cpu_s_per_min_per_node"][k]) for k in ("mean", "min", "max"))
    assert _number(idle["rss_mib_per_node"]["mean"])
    expected = run["expected_packets_per_s"]
    assert expected == pytest.approx(8 * (10 + 7 * 1.0))
    assert 0.5 * expected <= idle["packets_per_s"] <= 1.5 * expected
    failure = run["hard_failure"]
    assert len(failure["outages"]) == 1 and _number(failure["outage"]["median"])
    assert all(_number(v) for peak in failure["peak_packets_per_s"] for v in peak.values())
    assert _number(run["startup"]["comms_up_s"])
    assert _number(run["pulsectl_status_s"]["whole_process"]["median"])
    restart = run["restart"]
    assert _number(restart["peak_packets_per_s_after_restart"])
