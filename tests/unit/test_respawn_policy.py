"""The respawn policy (Heartbeat's ManagedChildDied) as a pure function, the config
side of respawn/failfast/env, and the guard in front of the real reboot."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from config_support import minimal_hacf

from pulse import respawn
from pulse.config import load_config
from pulse.resources.environment import child_environment, env_directives
from pulse.respawn import Exit, Verdict, judge

SIGTERM = int(signal.SIGTERM)


def death(
    exit: Exit,
    *,
    failfast: bool = False,
    ran_for: float = 60.0,
    short_runs: int = 0,
    shutting_down: bool = False,
) -> Verdict:
    return judge(
        failfast=failfast,
        exit=exit,
        ran_for=ran_for,
        short_runs=short_runs,
        shutting_down=shutting_down,
    )


def test_a_program_that_ran_long_is_restarted_at_once_and_its_short_count_resets() -> None:
    assert death(Exit(code=1), short_runs=7) == Verdict(restart=True, short_runs=0, delay=0.0)


def test_a_short_run_is_counted_and_delays_the_restart_by_one_second() -> None:
    assert death(Exit(code=0), ran_for=29.9, short_runs=3) == Verdict(
        restart=True, short_runs=4, delay=1.0
    )


def test_the_eleventh_short_run_in_a_row_is_respawning_too_fast() -> None:
    assert death(Exit(code=1), ran_for=1, short_runs=9).restart  # the 10th
    assert death(Exit(code=1), ran_for=1, short_runs=10) == Verdict(too_fast=True)


def test_exit_status_100_is_never_restarted() -> None:
    assert death(Exit(code=100)) == Verdict()


def test_nothing_is_restarted_once_shutdown_is_in_progress() -> None:
    assert death(Exit(signal=SIGTERM), shutting_down=True) == Verdict()
    assert death(Exit(code=0), shutting_down=True) == Verdict()


@pytest.mark.parametrize("exit", [Exit(code=1), Exit(code=100), Exit(signal=9)])
def test_a_failfast_program_dying_badly_outside_shutdown_asks_for_a_reboot(exit: Exit) -> None:
    verdict = death(exit, failfast=True)
    assert verdict.reboot and not verdict.restart


def test_a_failfast_program_exiting_0_is_restarted_like_a_respawn_one() -> None:
    assert death(Exit(code=0), failfast=True) == Verdict(restart=True)


def test_a_failfast_program_killed_at_shutdown_does_not_reboot() -> None:
    assert death(Exit(signal=SIGTERM), failfast=True, shutting_down=True) == Verdict()


def test_returncodes_become_exit_statuses_or_signals() -> None:
    assert Exit.from_returncode(3) == Exit(code=3)
    assert Exit.from_returncode(-9) == Exit(signal=9)
    assert Exit.from_returncode(0).clean and not Exit.from_returncode(-15).clean


# --------------------------------------------------------------------------- reboot guard


def test_the_real_reboot_is_refused_in_a_test_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The syscall and sync are replaced first: even a broken guard reaches only fakes.
    calls: list[str] = []
    monkeypatch.setattr(respawn, "_reboot_syscall", lambda: calls.append("reboot"))
    monkeypatch.setattr(os, "sync", lambda: calls.append("sync"))
    monkeypatch.delenv(respawn.NEVER_REBOOT_ENV, raising=False)
    respawn.system_reboot("a test")  # pytest is loaded
    monkeypatch.setenv(respawn.NEVER_REBOOT_ENV, "1")
    respawn.system_reboot("a test")
    assert calls == []


def test_the_test_suite_runs_with_the_reboot_switched_off() -> None:
    # Inherited by every daemon a test starts in a child process (conftest.py).
    assert os.environ.get(respawn.NEVER_REBOOT_ENV) == "1"


# --------------------------------------------------------------------------- environment


def test_env_lines_become_ha_variables(tmp_path: Path) -> None:
    config = load_config(minimal_hacf(tmp_path, "env FOO=bar", "env EMPTY="), node="alpha").config
    assert env_directives(config) == {"HA_FOO": "bar", "HA_EMPTY": ""}


def test_respawned_programs_get_heartbeats_environment_and_the_env_lines(tmp_path: Path) -> None:
    d = minimal_hacf(tmp_path, "env FOO=bar")
    config = load_config(d, node="alpha").config
    env = child_environment(config, node="alpha").variables
    assert env["HA_FOO"] == "bar"
    assert env["HA_CURHOST"] == "alpha"
    assert env["HA_keepalive"] == "1"
    assert env["HA_DIR"] and env["OCF_ROOT"]
