"""The service-crash scenario's pure parts (pulse_lab.crash) and keepalived's track_script."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from pulse.config.convert import MONITOR_HINT
from pulse_lab.bench import Tail
from pulse_lab.crash import (
    Call,
    KillMissed,
    WebServer,
    calls_after,
    down_then_served,
    monitored,
    script_parts,
)
from pulse_lab.keepalived import TrackScript, VrrpInstance
from pulse_lab.probe import Sample, read_samples


def test_monitored_turns_the_converted_hints_into_a_one_second_monitor() -> None:
    text = "[[group]]\n" + "\n".join(MONITOR_HINT) + "\n"
    out = monitored(text)
    assert 'monitor = { interval = "1s", timeout = "5s" }' in out
    assert 'failure_timeout = "10m"' in out
    assert MONITOR_HINT[1] in out and MONITOR_HINT[2] in out  # restart, threshold 3: defaults


def test_monitored_refuses_a_toml_without_the_hints() -> None:
    with pytest.raises(ValueError, match="no longer writes"):
        monitored("[[group]]\n")


def test_a_restart_in_place_splits_into_check_stop_start_and_first_answer() -> None:
    calls = [
        Call("status", 9.5),  # before the kill: not counted
        Call("status", 10.4),
        Call("status-done", 10.41),
        Call("stop", 10.42),
        Call("start", 10.45),
        Call("start-done", 10.6),
        Call("status", 11.5),  # after the first answer: not counted
    ]
    parts = script_parts(calls, 10.0, 10.55)
    assert parts == pytest.approx(
        {
            "kill_to_next_check": 0.4,
            "next_check_to_stop": 0.02,
            "stop_to_start": 0.03,
            "start_to_first_answer": 0.1,
        }
    )


def test_a_check_that_moves_the_address_elsewhere_has_only_its_first_part() -> None:
    assert script_parts([Call("status", 10.3)], 10.0, 10.6) == pytest.approx(
        {"kill_to_next_check": 0.3}
    )
    assert script_parts([], 10.0, 10.6) == {}


def test_the_call_log_is_read_in_monotonic_time_and_a_half_line_is_skipped(
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.log"
    now = time.time()
    log.write_text(f"status {now - 60}\nstop {now - 1}\nstart {now}\nstart-done 17")
    calls = calls_after(log, time.monotonic() - 30)
    assert [c.what for c in calls] == ["stop", "start"]
    assert calls[1].t == pytest.approx(time.monotonic(), abs=5)
    assert calls_after(tmp_path / "missing.log", 0.0) == []


def test_the_installed_wrapper_logs_each_call_and_the_check_fails_without_a_server(
    tmp_path: Path,
) -> None:
    web = WebServer(tmp_path / "prime", "prime")
    web.install()
    assert (tmp_path / "prime" / "www" / "index.html").read_text() == "prime\n"
    done = subprocess.run([str(web.script), "status"], capture_output=True, text=True, timeout=10)
    assert done.stdout.strip() == "demo-web is stopped"
    check = subprocess.run([str(web.check)], capture_output=True, timeout=10)
    assert check.returncode != 0
    calls = web.calls(0.0)
    assert [c.what for c in calls[-2:]] == ["status", "status-done"]


def _probe_file(path: Path, samples: list[tuple[float, bool, str]]) -> Tail[Sample]:
    path.write_text(
        "".join(
            json.dumps({"t": t, "ok": ok, "who": who, "ms": 1.0}) + "\n" for t, ok, who in samples
        )
    )
    return Tail(path, read_samples, lambda s: s.t)


def test_the_outage_of_a_crash_runs_from_the_last_answer_to_the_first_after_a_failure(
    tmp_path: Path,
) -> None:
    killed = time.monotonic() - 2.0
    probe = _probe_file(
        tmp_path / "probe.jsonl",
        [
            (killed - 0.02, True, "prime"),
            (killed + 0.01, False, "ConnectionRefusedError"),
            (killed + 0.5, False, "ConnectionRefusedError"),
            (killed + 0.6, True, "prime"),
        ],
    )
    gap = down_then_served(probe, killed, 15.0, lambda: None)
    assert gap is not None
    assert gap.seconds == pytest.approx(0.62) and gap.after == "prime"


def test_a_service_nobody_serves_again_gives_no_outage_within_the_bound(tmp_path: Path) -> None:
    killed = time.monotonic()
    probe = _probe_file(
        tmp_path / "probe.jsonl",
        [(killed - 0.02, True, "prime"), (killed + 0.01, False, "ConnectionRefusedError")],
    )
    assert down_then_served(probe, killed, 0.2, lambda: None) is None


def test_a_kill_the_client_never_notices_is_an_error(tmp_path: Path) -> None:
    killed = time.monotonic() - 10.0
    probe = _probe_file(
        tmp_path / "probe.jsonl", [(killed + 0.01 * i, True, "prime") for i in range(100)]
    )
    with pytest.raises(KillMissed):
        down_then_served(probe, killed, 15.0, lambda: None)


def test_keepalived_tracks_the_check_script_and_enables_script_security() -> None:
    track = TrackScript(path="/srv/prime/check-web", interval_s=1.0)
    text = VrrpInstance(
        name="prime",
        interface="eth0",
        address="198.51.100.11",
        peers=("198.51.100.12",),
        vip="198.51.100.100/24",
        priority=200,
        advert_s=0.14,
        track=track,
    ).render()
    assert "    enable_script_security\n" in text
    assert 'vrrp_script chk_service {\n    script "/srv/prime/check-web"\n' in text
    assert "    interval 1\n" in text and "    fall 1\n" in text and "    rise 1\n" in text
    assert "    track_script {\n        chk_service\n    }\n" in text
    assert text.index("vrrp_script") < text.index("vrrp_instance")
    assert text.count("{") == text.count("}")
