"""Script agents: status rules (docs/heartbeat.md#script-exit-codes), exit codes, lookup, env."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import IO

import pytest
import trio
from agent_support import config, script, spec

from pulse.config.model import Config, Logging, ResourceSpec
from pulse.resources import (
    AgentTimeouts,
    FloatingIP,
    LsbAgent,
    OcfAgent,
    ResourceError,
    ScriptAgent,
    SystemdAgent,
    UnusableAgent,
    make_agent,
)
from pulse.resources.scripts import (
    heartbeat_status_running,
    lsb_status_running,
    ocf_instance_name,
    ocf_monitor_running,
    ocf_stop_succeeded,
    parse_ocf_name,
    parse_ocf_params,
    run_script,
)

# --------------------------------------------------------------------------- status text


@pytest.mark.parametrize(
    ("stdout", "held"),
    [
        ("apache2 is running", True),
        ("Running", True),
        ("INFO: IPaddr Running OK", True),
        ("OK", True),
        ("apache2 is not running", False),
        ("NOT running", False),
        ("Not Running", False),
        ("NOT RUNNING", False),  # capitals match neither pattern
        ("apache2 is stopped", False),
        ("INFO: Resource is stopped", False),
        ("", False),
        ("is not\nrunning", True),  # checked with sh: "not" must be followed by a space
        ("is not \n running", False),  # ... after which the shell's * spans lines
        ("notrunning", True),  # Heartbeat's quirk: no space after "not", so "running" wins
        ("ok", False),
    ],
)
def test_heartbeat_status_text_rules(stdout: str, held: bool) -> None:
    assert heartbeat_status_running(stdout) is held


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("rc", "stdout", "running"),
    [
        (0, "apache2 is running", True),
        (0, "", True),
        (0, "foo is not running", False),  # non-LSB script that always exits 0
        (1, "dead but pid file exists", False),
        (2, "dead but subsys locked", False),
        (3, "apache2 is not running", False),
        (3, "", False),
        (4, "running", True),  # unknown: Heartbeat's text rule decides
        (4, "", False),
        (1 + 255, "", False),
    ],
)
def test_lsb_status_exit_codes_with_text_fallback(rc: int, stdout: str, running: bool) -> None:
    assert lsb_status_running(rc, stdout) is running


@pytest.mark.parametrize(
    ("rc", "verdict"), [(0, True), (7, False), (8, True), (1, None), (6, None)]
)
def test_ocf_monitor_exit_codes(rc: int, verdict: bool | None) -> None:
    assert ocf_monitor_running(rc) is verdict


def test_ocf_stop_of_a_stopped_resource_succeeds() -> None:
    assert ocf_stop_succeeded(0)
    assert ocf_stop_succeeded(7)
    assert not ocf_stop_succeeded(1)


def test_ocf_names_and_params() -> None:
    assert parse_ocf_name("ocf:heartbeat:Dummy") == ("heartbeat", "Dummy")
    assert parse_ocf_name("ocf:heartbeat") is None
    assert parse_ocf_name("ocf:../x:Dummy") is None
    assert parse_ocf_params(["ip=198.51.100.10", "cidr_netmask=24"]) == {
        "ip": "198.51.100.10",
        "cidr_netmask": "24",
    }
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_ocf_params(["novalue"])


def test_ocf_instance_name_is_file_name_safe() -> None:
    assert ocf_instance_name("Dummy", {}) == "Dummy"
    assert ocf_instance_name("Dummy", {"state": "/tmp/x y"}) == "Dummy__tmp_x_y"
    assert ocf_instance_name("IPaddr2", {"ip": "198.51.100.10"}) == "IPaddr2_198.51.100.10"


# --------------------------------------------------------------------------- resolution


def test_make_agent_resolves_as_resourcemanager(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert isinstance(make_agent(spec("198.51.100.10"), cfg), FloatingIP)
    assert isinstance(make_agent(spec("IPaddr::198.51.100.10/24/eth0"), cfg), FloatingIP)
    assert isinstance(make_agent(spec("IPaddr2::198.51.100.10/24/eth0:web"), cfg), FloatingIP)
    assert isinstance(make_agent(spec("IPv6addr::2001:db8::10/64/eth0"), cfg), FloatingIP)
    assert isinstance(make_agent(spec("ocf:heartbeat:Dummy::state=/x"), cfg), OcfAgent)
    assert isinstance(make_agent(spec("systemd:nginx.service"), cfg), SystemdAgent)
    assert isinstance(make_agent(spec("lsb:apache2"), cfg), LsbAgent)
    assert type(make_agent(spec("apache2"), cfg)) is ScriptAgent


def test_bare_ip_word_from_the_parser_is_a_floating_ip() -> None:
    agent = make_agent(
        ResourceSpec(raw="198.51.100.10/24", agent="IPaddr", args=("198.51.100.10/24",)),
        config(),
    )
    assert isinstance(agent, FloatingIP)
    assert agent.flavor == "IPaddr"
    assert agent.arp.count == 10 and agent.arp.interval == 0.5


def test_ipaddr2_gets_its_own_arp_defaults_and_label() -> None:
    agent = make_agent(spec("IPaddr2::198.51.100.10/24/eth0:web"), config())
    assert isinstance(agent, FloatingIP)
    assert (agent.arp.count, agent.arp.interval) == (5, 0.2)
    assert agent.argument.label == "eth0:web"


def test_registry_is_consulted_first() -> None:
    made: list[str] = []

    def factory(s: ResourceSpec, c: Config) -> UnusableAgent:
        made.append(s.raw)
        return UnusableAgent(s, "plugin")

    agent = make_agent(spec("IPaddr::198.51.100.10"), config(), registry={"IPaddr": factory})
    assert isinstance(agent, UnusableAgent)
    assert made == ["IPaddr::198.51.100.10"]


@pytest.mark.parametrize(
    ("word", "problem"),
    [
        ("IPaddr::198.51.100.300", "is not an IP address"),
        ("IPv6addr::198.51.100.10", "IPv6addr needs an IPv6 address"),
        ("ocf:heartbeat:Dummy::novalue", "NAME=VALUE"),
        ("ocf:Dummy", "ocf:PROVIDER:TYPE"),
        ("systemd:", "systemd:UNIT"),
    ],
)
async def test_unusable_definitions_fail_at_start_but_stop_cleanly(word: str, problem: str) -> None:
    agent = make_agent(spec(word), config())
    assert isinstance(agent, UnusableAgent)
    assert problem in agent.problem
    with pytest.raises(ResourceError):
        await agent.start()
    await agent.stop()
    assert await agent.status() is False


async def test_resource_dir_wins_over_init_dir(tmp_path: Path) -> None:
    rdir, idir = tmp_path / "resource.d", tmp_path / "init.d"
    rdir.mkdir()
    idir.mkdir()
    script(rdir / "svc", 'echo "resource.d $*"\n')
    script(idir / "svc", 'echo "init.d $*"\nexit 3\n')
    agent = make_agent(spec("svc::a1::a2"), config(rdir), init_dir=str(idir))
    # resource.d: the exit code is ignored and "running" isn't printed -> not held.
    assert await agent.status() is False
    (rdir / "svc").unlink()
    # init.d: LSB exit code 3 -> stopped, args still come first.
    assert await agent.status() is False
    script(idir / "svc", 'echo "$*" > "$(dirname "$0")/argv"; echo running\n')
    assert await agent.status() is True
    assert (idir / "argv").read_text() == "a1 a2 status\n"


async def test_non_executable_file_is_not_a_script(tmp_path: Path) -> None:
    (tmp_path / "svc").write_text("#!/bin/sh\necho running\n")
    agent = make_agent(spec("svc"), config(tmp_path), init_dir=str(tmp_path / "none"))
    with pytest.raises(ResourceError, match="Cannot locate resource script svc"):
        await agent.status()


async def test_missing_script_fails_every_operation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(spec("nosuch"), config(tmp_path), init_dir=str(tmp_path))
    for op in (agent.start, agent.stop, agent.status):
        with pytest.raises(ResourceError) as info:
            await op()
        assert info.value.reason == "Cannot locate resource script nosuch"
        assert info.value.resource == "nosuch"
    assert "Cannot locate resource script nosuch" in caplog.text


async def test_start_logs_heartbeats_running_line_and_fails_on_nonzero_exit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = script(tmp_path / "svc", "exit 2\n")
    agent = make_agent(spec("svc::x"), config(tmp_path))
    with caplog.at_level("INFO", logger="pulse.resources"), pytest.raises(ResourceError) as info:
        await agent.start()
    assert info.value.reason == f"Return code 2 from {path}"
    messages = [r.getMessage() for r in caplog.records]
    assert f"Running {path} x start" in messages
    assert f"Return code 2 from {path}" in messages


async def test_scripts_get_heartbeats_environment(tmp_path: Path) -> None:
    script(tmp_path / "svc", 'env > "$(dirname "$0")/env"\n')
    cfg = config(
        tmp_path,
        parameters={"deadtime": "30", "auto_failback": "on"},
        logging=Logging(logfile="/var/log/ha-log", debug=1),
    )
    agent = make_agent(spec("svc"), cfg, env={"HA_CURHOST": "prime", "HA_deadtime": "31"})
    await agent.start()
    env = dict(
        line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line
    )
    assert env["HA_CURHOST"] == "prime"
    assert env["HA_deadtime"] == "31"  # the caller's env is merged last
    assert env["HA_auto_failback"] == "on"
    assert env["HA_LOGFILE"] == "/var/log/ha-log"
    assert env["HA_debug"] == "1"
    assert env["HA_RESOURCEDIR"] == str(tmp_path)
    assert env["OCF_ROOT"] == "/usr/lib/ocf"


async def test_script_stdin_is_closed(tmp_path: Path) -> None:
    script(tmp_path / "svc", 'if read line; then echo "got input"; else echo "eof OK"; fi\n')
    agent = make_agent(spec("svc"), config(tmp_path))
    assert await agent.status() is True  # "OK" printed after EOF on stdin


async def test_daemon_keeping_stdout_open_does_not_hold_up_start(tmp_path: Path) -> None:
    # An init script that starts a daemon inheriting its stdout must not make us wait.
    script(tmp_path / "svc", 'sleep 30 &\necho $! > "$(dirname "$0")/pid"\nexit 0\n')
    agent = make_agent(spec("svc"), config(tmp_path))
    try:
        with trio.fail_after(10):
            await agent.start()
    finally:
        pid = int((tmp_path / "pid").read_text())
        os.kill(pid, 9)


# --------------------------------------------------------------------------- OCF


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def ocf_tree(root: Path, body: str) -> Path:
    d = root / "resource.d" / "acme"
    d.mkdir(parents=True)
    return script(d / "Thing", body)


async def test_ocf_agent_runs_op_with_ocf_environment(tmp_path: Path) -> None:
    ocf_tree(
        tmp_path,
        'env | grep -E "^(OCF_|HA_CURHOST)" | sort > "$OCF_RESKEY_out.$1"\n'
        'case "$1" in monitor) exit 7;; esac\nexit 0\n',
    )
    out = tmp_path / "out"
    agent = make_agent(
        spec(f"ocf:acme:Thing::out={out}::color=blue"),
        config(),
        env={"OCF_ROOT": str(tmp_path), "HA_CURHOST": "prime"},
        timeouts=AgentTimeouts(start=12.5),
    )
    await agent.start()
    assert await agent.status() is False
    env = read_env(tmp_path / "out.start")
    assert env["OCF_ROOT"] == str(tmp_path)
    assert env["OCF_RESKEY_color"] == "blue"
    assert env["OCF_RESOURCE_TYPE"] == "Thing"
    assert env["OCF_RESOURCE_PROVIDER"] == "acme"
    assert env["OCF_RESOURCE_INSTANCE"].startswith("Thing_")
    assert env["OCF_RA_VERSION_MAJOR"] == "1"
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "12500"
    assert env["HA_CURHOST"] == "prime"


async def test_ocf_stop_of_not_running_succeeds_and_errors_raise(tmp_path: Path) -> None:
    ocf_tree(tmp_path, 'case "$1" in stop) exit 7;; monitor) exit 5;; start) exit 6;; esac\n')
    agent = make_agent(spec("ocf:acme:Thing"), config(), env={"OCF_ROOT": str(tmp_path)})
    await agent.stop()
    with pytest.raises(ResourceError, match="OCF_ERR_INSTALLED"):
        await agent.status()
    with pytest.raises(ResourceError, match="OCF_ERR_CONFIGURED"):
        await agent.start()


async def test_missing_ocf_agent_cannot_be_located(tmp_path: Path) -> None:
    agent = make_agent(spec("ocf:acme:Nothing"), config(), env={"OCF_ROOT": str(tmp_path)})
    with pytest.raises(ResourceError, match="Cannot locate resource script"):
        await agent.start()


# --------------------------------------------------------------------------- systemd


async def test_systemd_agent_maps_ops_to_systemctl(tmp_path: Path) -> None:
    fake = script(
        tmp_path / "systemctl",
        'echo "$*" >> "$(dirname "$0")/calls"\n'
        'case "$1" in is-active) exit 3;; stop) exit 5;; esac\nexit 0\n',
    )
    agent = SystemdAgent(
        spec("systemd:web.service"),
        unit="web.service",
        env=dict(os.environ),
        timeouts=AgentTimeouts(),
        systemctl=str(fake),
    )
    await agent.start()
    assert await agent.status() is False
    await agent.stop()  # "not loaded" is stopped
    assert (tmp_path / "calls").read_text().splitlines() == [
        "start web.service",
        "is-active --quiet web.service",
        "stop web.service",
    ]


# --------------------------------------------------------------------------- timeouts


async def test_hung_script_is_killed_with_its_children_at_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    path = script(
        tmp_path / "hang",
        f'trap "" TERM\nsleep 300 &\necho $! > {pidfile}\nwait\n',
    )
    start = trio.current_time()
    with pytest.raises(ResourceError) as info:
        await run_script(
            [str(path), "start"], resource="hang", env=dict(os.environ), time_limit=0.5,
            kill_grace=0.5,
        )  # fmt: skip
    elapsed = trio.current_time() - start
    assert info.value.reason == f"{path} start timed out after 0.5 s"
    assert elapsed < 0.5 + 0.5 + 2.0
    child = int(pidfile.read_text())
    assert await trio.to_thread.run_sync(_dies_within, child, 5.0)


def _state(pid: int) -> str:
    """The process state letter, "Z" (zombie) also when it is gone entirely."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def _dies_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _state(pid) == "Z":
            return True
        time.sleep(0.01)
    return False


async def test_unrunnable_program_is_a_resource_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("no shebang here")
    bad.chmod(0o755)
    with pytest.raises(ResourceError, match="cannot run"):
        await run_script([str(bad)], resource="bad", env={}, time_limit=5)


async def test_a_caller_cancelled_while_the_output_files_are_made_leaks_no_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[IO[bytes]] = []
    real = tempfile.TemporaryFile

    with trio.CancelScope() as scope:

        def temporary_file() -> IO[bytes]:
            f = real()
            made.append(f)
            if len(made) == 1:  # the caller gives up while the first file is made
                trio.from_thread.run_sync(scope.cancel)
            return f

        monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
        await run_script(["/bin/true"], resource="r", env={}, time_limit=5)
    assert scope.cancelled_caught
    assert len(made) == 1 and all(f.closed for f in made)
