"""`pulse run` refuses what it cannot run with FILE:LINE and no traceback; logging
follows logfile/debugfile in Heartbeat's line formats."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

from config_support import LEGACY, install

from pulse import logsetup
from pulse.config.model import Logging


def pulse_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulse", "run", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_run_with_a_broken_ha_cf_exits_1_with_file_line(tmp_path: Path) -> None:
    conf = install(LEGACY / "000-prime-calc-apache", tmp_path)
    ha_cf = conf / "ha.cf"
    ha_cf.write_text(ha_cf.read_text() + "deadtme 10\n")
    done = pulse_run("-c", str(conf), "--node", "prime", "--state-dir", str(tmp_path / "s"))
    assert done.returncode == 1
    lines = len(ha_cf.read_text().splitlines())
    assert f"{ha_cf}:{lines}: " in done.stderr
    assert "did you mean deadtime" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_refuses_an_interface_this_machine_does_not_have(tmp_path: Path) -> None:
    conf = install(LEGACY / "000-prime-calc-apache", tmp_path)
    text = (conf / "ha.cf").read_text()
    assert "bcast eth0" in text
    (conf / "ha.cf").write_text(text.replace("bcast eth0", "bcast pulse-nonexistent0"))
    done = pulse_run("-c", str(conf), "--node", "prime", "--state-dir", str(tmp_path / "s"))
    assert done.returncode == 1
    assert re.search(r"ha\.cf:\d+: .*pulse-nonexistent0", done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_run_refuses_a_group_readable_authkeys(tmp_path: Path) -> None:
    conf = install(LEGACY / "000-prime-calc-apache", tmp_path)
    (conf / "authkeys").chmod(0o640)
    done = pulse_run("-c", str(conf), "--node", "prime", "--state-dir", str(tmp_path / "s"))
    assert done.returncode == 1
    assert "Bad permissions on keyfile" in done.stderr
    assert "Traceback" not in done.stderr


def emit(cfg: Logging) -> None:
    log = logsetup.configure(cfg, ident="pulse", stderr=False)
    try:
        log.debug("a debug line")
        log.info("Link calc:eth0 up.")
        log.warning("node calc: is dead")
    finally:
        logsetup.shutdown()


def test_logfile_gets_info_and_up_debugfile_gets_everything_in_heartbeat_format(
    tmp_path: Path,
) -> None:
    logfile, debugfile = tmp_path / "ha-log", tmp_path / "ha-debug"
    emit(Logging(logfile=str(logfile), debugfile=str(debugfile)))
    log_lines = logfile.read_text().splitlines()
    debug_lines = debugfile.read_text().splitlines()
    assert len(log_lines) == 2
    assert len(debug_lines) == 3
    pattern = r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ pulse: \[\d+\]: (info|WARN): "
    assert re.match(pattern + r"Link calc:eth0 up\.$", log_lines[0])
    assert re.match(pattern + r"node calc: is dead$", log_lines[1])
    assert debug_lines[0].endswith("debug: a debug line")


def test_syslogmsgfmt_off_uses_the_old_heartbeat_line_shape(tmp_path: Path) -> None:
    logfile = tmp_path / "ha-log"
    emit(Logging(logfile=str(logfile), syslogmsgfmt=False))
    first = logfile.read_text().splitlines()[0]
    assert re.match(
        r"^pulse\[\d+\]: \d{4}/\d\d/\d\d_\d\d:\d\d:\d\d info: Link calc:eth0 up\.$", first
    )


def test_without_any_destination_lines_go_to_stderr() -> None:
    log = logsetup.configure(Logging(), ident="pulse")
    try:
        handlers = logsetup._listener.handlers if logsetup._listener else ()
        assert any(isinstance(h, logging.StreamHandler) for h in handlers)
    finally:
        logsetup.shutdown()
    del log
