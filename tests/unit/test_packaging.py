"""What ships next to the code for a production install: the systemd unit, logrotate."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "pulse.service"


def test_the_systemd_unit_is_a_notify_service_with_a_watchdog_and_reload() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RuntimeDirectory=pulse",
    ):
        assert line in text.splitlines(), line
    caps = next(line for line in text.splitlines() if line.startswith("CapabilityBoundingSet="))
    assert {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"} <= set(caps[22:].split())
    assert any(line.startswith("WatchdogSec=") for line in text.splitlines())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    # The unit points at /opt/pulse; here the interpreter's own bin directory stands in.
    bindir = Path(sys.executable).parent
    if not (bindir / "pulse").exists():
        pytest.skip("pulse is not installed next to this interpreter")
    unit = tmp_path / "pulse.service"
    unit.write_text(UNIT.read_text().replace("/opt/pulse/bin", str(bindir)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "man " not in line  # man pages are not installed here
    ]
    assert problems == []


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff")
@pytest.mark.parametrize("page", ["pulse.8", "pulsectl.8", "pulse.toml.5"])
def test_the_man_pages_render_without_warnings(page: str) -> None:
    done = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(ROOT / "docs" / "man" / page)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == ""


@pytest.mark.slow
def test_the_installer_builds_a_working_virtualenv_from_this_checkout(tmp_path: Path) -> None:
    prefix = tmp_path / "opt-pulse"
    done = subprocess.run(
        [str(ROOT / "scripts" / "install.sh"), "--prefix", str(prefix), "--no-system"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    version = subprocess.run(
        [str(prefix / "bin" / "pulsectl"), "--version"], capture_output=True, text=True
    )
    assert version.stdout.startswith("pulsectl (pulse) ")
    wheel_license = list(prefix.glob("lib/python3*/site-packages/pulse_ha-*.dist-info/licenses"))
    assert wheel_license and (wheel_license[0] / "LICENSE").exists()
    # A production install has no lab: no pyroute2, and `pulse demo` says what it needs.
    site = next(prefix.glob("lib/python3*/site-packages"))
    assert not (site / "pyroute2").exists() and not (site / "pulse_lab").exists()
    demo = subprocess.run(
        [str(prefix / "bin" / "pulse"), "demo"], capture_output=True, text=True, timeout=60
    )
    assert demo.returncode == 2
    assert "pulse-lab" in demo.stderr and "Traceback" not in demo.stderr
