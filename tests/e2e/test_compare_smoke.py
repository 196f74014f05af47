"""bench/compare --quick runs end to end for each daemon and writes well-formed JSON.

One run per daemon (pulse, Heartbeat 3.0.6, keepalived), each one trial at keepalive
100 ms / deadtime 500 ms with a short idle window, so a missing Debian package skips only
that daemon. The pulse run also covers a 4-node scale run and pulsectl status latency.
Then the service-crash scenario (issue 11) once per daemon: pulse and keepalived serve
again (prime restarted in place, calc after a track_script failure), Heartbeat does not
within the bound. Timings are never asserted: they depend on the machine and its load.
The full comparison and its results are in docs/performance.md.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pulse_lab.heartbeat import missing_prerequisites
from pulse_lab.keepalived import keepalived_missing
from pulse_lab.netns import netns_available

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "compare"
REQUIRED = {"hard failure", "failback", "graceful"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _missing(daemon: str) -> str | None:
    if daemon == "heartbeat":
        reasons = missing_prerequisites()
        if not Path("/usr/lib/ocf/resource.d/heartbeat/IPaddr").exists():
            reasons.append("resource-agents (the IPaddr agent) is not installed")
        return "; ".join(reasons) or None
    if daemon == "keepalived":
        return keepalived_missing()
    return None


def _run(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "compare.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--idle", "3", "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout


def _assert_cost(cost: dict[str, Any]) -> None:
    for key in ("cpu_s_per_min", "core_percent", "rss_mib", "window_s"):
        assert _number(cost[key]) and cost[key] >= 0
    assert cost["processes"] >= 1


@pytest.mark.parametrize("daemon", ["pulse", "heartbeat", "keepalived"])
def test_quick_comparison_reports_outages_and_idle_cost_of_each_daemon(
    tmp_path: Path, daemon: str
) -> None:
    reason = netns_available() or _missing(daemon)
    if reason is not None:
        pytest.skip(f"{daemon}: {reason}")
    extra = ["--scale", "4", "--status-runs", "3"] if daemon == "pulse" else ["--scale", "0"]
    document, stdout = _run(tmp_path, "--daemons", daemon, *extra)
    assert "median" in stdout
    assert _number(document["machine"]["nproc"])
    [setting] = document["settings"]
    assert (setting["keepalive_ms"], setting["deadtime_ms"]) == (100, 500)
    assert _number(setting["keepalived_advert_int_s"])
    assert _number(document["daemons"][daemon]["fast"]["detection_s"])
    rows = {r["scenario"]: r for r in document["results"] if r["daemon"] == daemon}
    assert set(rows) >= REQUIRED
    for scenario in REQUIRED:
        row = rows[scenario]
        assert row["trials"] == 1 and row["failed"] == 0
        stats = row["outage"]
        assert all(_number(stats[k]) for k in ("min", "median", "max"))
        assert len(row["outages"]) == 1
    idle = document["idle"][f"{daemon} fast"]
    assert set(idle) == {"prime", "calc"}
    for cost in idle.values():
        _assert_cost(cost)
    if daemon == "pulse":
        [scale] = document["scale"]
        assert scale["nodes"] == 4 and scale["hard_failure"]["trials"] == 1
        assert _number(scale["idle"]["packets_per_s"])
        assert _number(scale["idle"]["core_percent_per_node"]["mean"])
        status = document["pulsectl_status"]
        assert _number(status["whole_process_s"]["median"])
    else:
        assert document["scale"] == [] and document["pulsectl_status"] == {}


@pytest.mark.parametrize(
    ("daemon", "served_by"), [("pulse", "prime"), ("heartbeat", None), ("keepalived", "calc")]
)
def test_quick_service_crash_is_served_again_by_the_right_node_or_not_at_all(
    tmp_path: Path, daemon: str, served_by: str | None
) -> None:
    reason = netns_available() or _missing(daemon)
    if reason is not None:
        pytest.skip(f"{daemon}: {reason}")
    document, stdout = _run(tmp_path, "--daemons", daemon, "--scenarios", "service-crash")
    [row] = [r for r in document["results"] if r["daemon"] == daemon]
    assert row["scenario"] == "service crash" and row["failed"] == 0
    [trial] = document["trials"]
    assert trial["served_by"] == served_by and trial["error"] is None
    if served_by is None:
        assert row["not_served"] == 1 and row["outage"] is None
        assert "not served again within 15 s" in stdout
    else:
        assert row["trials"] == 1 and _number(row["outage"]["median"])
        assert _number(row["parts"]["kill_to_next_check"]["median"])
    assert document["scale"] == [] and document["pulsectl_status"] == {}
