"""bench/failover --quick runs end to end and writes well-formed JSON with numbers,
the service-crash scenario (issue 11) included.

Timings are never asserted here: they depend on the machine and its load. The
full benchmark and its results are in docs/performance.md.
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

BENCH = Path(__file__).resolve().parents[2] / "bench" / "failover"
SCENARIOS = {"hard failure", "failback", "standby", "service crash"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_quick_failover_benchmark_writes_min_median_max_for_every_scenario(
    tmp_path: Path,
) -> None:
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=330,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "median" in done.stdout and "already running" in done.stdout
    document = json.loads(out.read_text())
    assert _number(document["machine"]["nproc"])
    [setting] = document["settings"]  # the service-crash cluster runs at this one too
    assert (setting["keepalive_ms"], setting["deadtime_ms"]) == (100, 500)
    rows = {row["scenario"]: row for row in document["results"]}
    assert set(rows) >= SCENARIOS
    for scenario in SCENARIOS:
        row = rows[scenario]
        assert row["trials"] == 2 and row["failed"] == 0
        stats = row["outage"]
        assert all(_number(stats[k]) for k in ("min", "median", "max"))
        assert stats["min"] <= stats["median"] <= stats["max"]
        assert all(_number(v) for part in row["parts"].values() for v in part.values())
    trials = [t for t in document["trials"] if t["scenario"] in SCENARIOS]
    assert len(trials) == 2 * len(SCENARIOS)
    assert all(_number(t["outage"]) and t["error"] is None for t in trials)
    # pulse restarted the killed server in place: the breakdown has the restart in it.
    assert {"kill_to_next_check", "stop_to_start"} <= set(rows["service crash"]["parts"])
