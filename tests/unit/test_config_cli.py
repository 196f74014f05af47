"""`pulse check` and `pulse convert` as an administrator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from config_support import BROKEN, LEGACY, install, write_legacy


def pulse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulse", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_good_config_prints_summary_and_warnings(tmp_path: Path) -> None:
    d = install(LEGACY / "000-prime-calc-apache", tmp_path)
    r = pulse("check", "-c", str(d), "--node", "prime")
    assert r.returncode == 0, r.stderr
    assert "nodes:         calc, prime (this node)" in r.stdout
    assert "links:         bcast eth0 port 694" in r.stdout
    assert "keepalive 2s, deadtime 10s" in r.stdout
    assert "auth:          md5" in r.stdout
    assert "auto_failback: legacy" in r.stdout
    assert "192.168.1.20: preferred node prime (this node)" in r.stdout
    assert f"{d}/ha.cf: warning: Deprecated 'legacy' auto_failback" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_check_bad_config_prints_one_line_per_error_and_exits_1(tmp_path: Path) -> None:
    d = install(BROKEN / "legacy-every-error-reported", tmp_path)
    r = pulse("check", "-c", str(d), "--node", "alpha")
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == (
        f"{d}/ha.cf:2: deadtime: must be more than twice keepalive (2s); "
        "raise deadtime or lower keepalive"
    )
    assert len(lines) == 4
    assert "Traceback" not in r.stderr


def test_check_missing_directory_is_one_clean_error(tmp_path: Path) -> None:
    r = pulse("check", "-c", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert r.stderr == f"{tmp_path}/nope: no such file or directory\n"


def test_check_unreadable_files_and_toml_syntax_errors_never_trace(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[cluster\n")
    weird = tmp_path / "dir.toml"
    weird.mkdir()
    for target in (bad, weird, tmp_path):  # tmp_path: a directory without ha.cf
        r = pulse("check", "-c", str(target), "--node", "a")
        assert r.returncode == 1
        assert "Traceback" not in r.stderr
        assert r.stderr.startswith(str(target))


def test_convert_prints_toml_that_checks_clean(tmp_path: Path) -> None:
    d = install(LEGACY / "001-julius-caesar-serial", tmp_path)
    r = pulse("convert", "-c", str(d), "--node", "julius")
    assert r.returncode == 0, r.stderr
    doc = tomllib.loads(r.stdout)
    assert doc["cluster"]["nodes"] == ["julius", "caesar"]
    assert doc["links"] == [{"type": "serial", "device": "/dev/ttyS0", "baud": 19200}]
    out = tmp_path / "pulse.toml"
    out.write_text(r.stdout)
    r2 = pulse("check", "-c", str(out), "--node", "julius")
    assert r2.returncode == 0, r2.stderr
    assert "auto_failback: off" in r2.stdout


def test_convert_of_a_broken_config_fails_like_check(tmp_path: Path) -> None:
    d = install(BROKEN / "legacy-pacemaker-on", tmp_path)
    r = pulse("convert", "-c", str(d), "--node", "alpha")
    assert r.returncode == 1 and r.stdout == ""
    assert "pacemaker/crm must be off" in r.stderr


def test_check_says_ipfail_is_built_in_and_which_respawn_lines_are_not_started(
    tmp_path: Path,
) -> None:
    d = write_legacy(
        tmp_path,
        "bcast lo\nping 198.51.100.254\nauto_failback on\nnode alpha beta\n"
        "respawn hacluster /usr/lib/heartbeat/ipfail\nrespawn hacluster /usr/lib/heartbeat/ccm\n"
        "failfast root /bin/true\n",
    )
    r = pulse("check", "-c", str(d), "--node", "alpha")
    assert r.returncode == 0, r.stderr
    assert "ipfail:        built in: groups go to the node reaching more ping nodes" in r.stdout
    assert (
        "respawn:       /usr/lib/heartbeat/ipfail (not started: built in); "
        "/usr/lib/heartbeat/ccm (not started: a Heartbeat API client); /bin/true (failfast)"
    ) in r.stdout


def test_check_refuses_a_mailto_word_when_the_mailto_plugin_is_disabled(tmp_path: Path) -> None:
    d = install(LEGACY / "001-julius-caesar-serial", tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "pulse", "check", "-c", str(d), "--node", "julius"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PULSE_DISABLE_PLUGINS": "mailto"},
    )
    assert r.returncode == 1
    assert (
        "resource [MailTo::alerts@myworkaddress.com::JuliusCaesar]: the MailTo agent comes "
        "with the pulse-mailto plugin, which is not installed or is disabled"
    ) in r.stderr
    assert "Traceback" not in r.stderr


def test_check_warns_about_a_floating_address_on_an_interface_this_machine_lacks(
    tmp_path: Path,
) -> None:
    d = write_legacy(
        tmp_path,
        hacf="keepalive 1\ndeadtime 10\nbcast lo\nauto_failback on\nnode alpha beta\n",
        haresources="alpha 198.51.100.10/24/nosuchif0\n",
    )
    r = pulse("check", "-c", str(d), "--node", "alpha")
    assert r.returncode == 0, r.stderr
    assert (
        "warning: resource [198.51.100.10/24/nosuchif0]: interface [nosuchif0] does not "
        "exist on this machine"
    ) in r.stderr
