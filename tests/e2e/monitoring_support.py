"""Helpers of the monitoring end-to-end tests (test_failover_monitoring*.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from pulse.config.convert import MONITOR_HINT


def monitored(text: str) -> str:
    """The converted TOML with the group's monitor turned on (1 s checks, 10 min window)."""
    for hint in MONITOR_HINT:
        assert hint in text, f"pulse convert no longer writes {hint!r}"
    text = text.replace(MONITOR_HINT[0], 'monitor = { interval = "1s", timeout = "5s" }')
    return text.replace(MONITOR_HINT[3], 'failure_timeout = "10m"')


def kill_web(tmp_path: Path, name: str) -> None:
    """SIGKILL the node's web server (what the demo script started), behind pulse's back."""
    pid = int((tmp_path / name / "demo-web.pid").read_text())
    os.kill(pid, signal.SIGKILL)


def count_starts(workdir: Path, names: list[str]) -> None:
    """Make each node's web script append a line to ``NAME/starts`` for every real start
    (not for a start that finds the server already running)."""
    for name in names:
        script = workdir / name / "resource.d" / "apache2"
        text = script.read_text()
        marker = "    running && exit 0\n"
        assert marker in text, "the demo web script changed"
        starts = workdir / name / "starts"
        script.write_text(text.replace(marker, f"{marker}    echo start >> {starts}\n", 1))
