"""Monitor operations of every agent kind (docs/resources.md#monitoring)."""

from __future__ import annotations

import ipaddress
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing
from agent_support import config, script, spec
from hypothesis import example, given
from hypothesis import strategies as st

from pulse.resources import (
    AgentTimeouts,
    FloatingIP,
    MonitorResult,
    MonitorState,
    ResourceError,
    SystemdAgent,
    make_agent,
    monitor_agent,
    probe_group,
)
from pulse.resources import ipaddr as ipaddr_module
from pulse.resources.base import stderr_tail, wall_clock_iso
from pulse.resources.ipaddr import Presence, presence_state
from pulse.resources.scripts import lsb_monitor_state, ocf_monitor_state, systemd_monitor_state

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
RUNNING, NOT_RUNNING, FAILED = MonitorState.RUNNING, MonitorState.NOT_RUNNING, MonitorState.FAILED


# --------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("code", "state"),
    [(0, RUNNING), (8, RUNNING), (7, NOT_RUNNING), (1, FAILED), (2, FAILED), (3, FAILED),
     (4, FAILED), (5, FAILED), (6, FAILED), (9, FAILED), (42, FAILED)],
)  # fmt: skip
def test_ocf_monitor_codes_map_to_running_not_running_or_failed(
    code: int, state: MonitorState
) -> None:
    assert ocf_monitor_state(code) is state


@pytest.mark.parametrize(
    ("code", "state"),
    [(0, RUNNING), (3, NOT_RUNNING), (1, FAILED), (2, FAILED), (4, FAILED), (150, FAILED)],
)
def test_lsb_status_codes_dead_with_pid_or_lock_file_and_unknown_are_failures(
    code: int, state: MonitorState
) -> None:
    assert lsb_monitor_state(code) is state


@pytest.mark.parametrize(
    ("word", "state"),
    [("active", RUNNING), ("reloading", RUNNING), ("activating", RUNNING),
     ("inactive", NOT_RUNNING), ("deactivating", NOT_RUNNING), ("failed", FAILED),
     ("unknown", FAILED), ("", FAILED)],
)  # fmt: skip
def test_systemd_active_states(word: str, state: MonitorState) -> None:
    assert systemd_monitor_state(word) is state


def test_a_floating_ip_is_running_only_on_an_interface_that_is_up_with_a_carrier() -> None:
    assert presence_state(None)[0] is NOT_RUNNING
    assert presence_state(Presence(interface="eth0", up=True, running=True)) == (RUNNING, "")
    assert presence_state(Presence(interface="eth0", up=False, running=False)) == (
        FAILED,
        "interface eth0 is down",
    )
    assert presence_state(Presence(interface="eth0", up=True, running=False)) == (
        FAILED,
        "interface eth0 has no carrier",
    )


def test_the_stderr_tail_keeps_the_end_and_the_time_is_iso_8601_utc() -> None:
    assert stderr_tail("  short\n") == "short"
    assert stderr_tail("x" * 600 + "END", limit=10) == "…" + "x" * 7 + "END"
    assert wall_clock_iso(0) == "1970-01-01T00:00:00.000+00:00"


@given(st.floats(min_value=0, max_value=2**33, allow_nan=False))
@example(1_700_000_000.9999995)  # rounds up to the next second, as datetime does
@example(1_700_000_000.0009999)
def test_the_wall_clock_is_written_as_datetime_writes_it(when: float) -> None:
    expected = datetime.fromtimestamp(when, UTC)
    assert wall_clock_iso(when) == expected.isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- OCF


def ocf_agent(root: Path, body: str, word: str = "ocf:acme:Thing") -> object:
    script(root / "resource.d" / "acme" / "Thing", body)
    return make_agent(spec(word), config(), env={"OCF_ROOT": str(root)})


@pytest.mark.parametrize(
    ("code", "state", "reason"),
    [
        (0, RUNNING, ""),
        (8, RUNNING, ""),
        (7, NOT_RUNNING, "monitor: OCF_NOT_RUNNING from "),
        (1, FAILED, "monitor: OCF_ERR_GENERIC (generic error) from "),
        (5, FAILED, "monitor: OCF_ERR_INSTALLED (not installed) from "),
        (6, FAILED, "monitor: OCF_ERR_CONFIGURED (not configured) from "),
        (9, FAILED, "monitor: OCF_FAILED_PROMOTED (failed while promoted) from "),
    ],
)
async def test_ocf_monitor_reports_the_code_its_meaning_and_stderr(
    tmp_path: Path, code: int, state: MonitorState, reason: str
) -> None:
    body = f'[ "$1" = monitor ] || exit 3\necho "rc {code}" >&2\nexit {code}\n'
    agent = ocf_agent(tmp_path, body)
    before = time.time()
    result = await agent.monitor(5.0)  # type: ignore[attr-defined]
    assert result.state is state
    assert result.code == code
    assert result.reason.startswith(reason)
    assert result.stderr == f"rc {code}"
    assert result.resource == "ocf:acme:Thing"
    assert before - 1 <= _epoch(result.when) <= time.time() + 1


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def test_a_missing_ocf_agent_is_a_failed_monitor(tmp_path: Path) -> None:
    agent = make_agent(spec("ocf:acme:Nothing"), config(), env={"OCF_ROOT": str(tmp_path)})
    result = await monitor_agent(agent, timeout=5.0)
    assert result.state is FAILED
    assert result.reason.startswith("Cannot locate resource script")


@pytest.mark.skipif(not DUMMY.exists(), reason="resource-agents is not installed")
async def test_the_real_dummy_agent_runs_after_start_and_not_once_its_state_file_is_gone(
    tmp_path: Path,
) -> None:
    state = tmp_path / "dummy.state"
    agent = make_agent(
        spec(f"ocf:heartbeat:Dummy::state={state}"),
        config(),
        env={"HA_RSCTMP": str(tmp_path)},
    )
    assert (await monitor_agent(agent, timeout=20.0)).state is NOT_RUNNING
    await agent.start()
    assert (await monitor_agent(agent, timeout=20.0)).state is RUNNING
    state.unlink()
    result = await monitor_agent(agent, timeout=20.0)
    assert result.state is NOT_RUNNING
    assert result.code == 7


# --------------------------------------------------------------------------- LSB and resource.d


@pytest.mark.parametrize(
    ("code", "state"), [(0, RUNNING), (3, NOT_RUNNING), (1, FAILED), (2, FAILED), (4, FAILED)]
)
async def test_lsb_status_exit_codes_decide_the_monitor(
    tmp_path: Path, code: int, state: MonitorState
) -> None:
    script(tmp_path / "init.d" / "web", f'[ "$1" = status ] || exit 0\nexit {code}\n')
    agent = make_agent(spec("lsb:web"), config(), init_dir=str(tmp_path / "init.d"))
    result = await agent.monitor(5.0)  # type: ignore[attr-defined]
    assert (result.state, result.code) == (state, code)
    if state is FAILED:
        assert "program" in result.reason


async def test_an_init_script_found_by_name_is_read_by_lsb_codes_too(tmp_path: Path) -> None:
    script(tmp_path / "init.d" / "web", 'echo "web is running"\nexit 1\n')
    agent = make_agent(
        spec("web"), config(tmp_path / "resource.d"), init_dir=str(tmp_path / "init.d")
    )
    result = await monitor_agent(agent, timeout=5.0)
    assert result.state is FAILED
    assert result.reason.startswith("status: program is dead and its pid file exists")


@pytest.mark.parametrize(
    ("stdout", "state"),
    [("web is running", RUNNING), ("OK", RUNNING), ("web is not running", NOT_RUNNING),
     ("stopped", NOT_RUNNING), ("", NOT_RUNNING)],
)  # fmt: skip
async def test_heartbeat_resource_d_status_is_read_from_its_output_not_its_exit_code(
    tmp_path: Path, stdout: str, state: MonitorState
) -> None:
    script(tmp_path / "resource.d" / "web", f'echo "{stdout}"\nexit 0\n')
    agent = make_agent(spec("web"), config(tmp_path / "resource.d"), init_dir=str(tmp_path))
    assert (await monitor_agent(agent, timeout=5.0)).state is state


# --------------------------------------------------------------------------- systemd


@pytest.mark.parametrize(
    ("word", "code", "state"),
    [("active", 0, RUNNING), ("inactive", 3, NOT_RUNNING), ("failed", 3, FAILED)],
)
async def test_systemd_monitor_asks_a_systemctl_found_on_path(
    tmp_path: Path, word: str, code: int, state: MonitorState
) -> None:
    bin_dir = tmp_path / "bin"
    script(
        bin_dir / "systemctl",
        f'echo "$*" >> "{tmp_path}/calls"\necho {word}\nexit {code}\n',
    )
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin')}")
    agent = SystemdAgent(
        spec("systemd:web.service"), unit="web.service", env=env, timeouts=AgentTimeouts()
    )
    result = await monitor_agent(agent, timeout=5.0)
    assert (result.state, result.code) == (state, code)
    assert (tmp_path / "calls").read_text() == "is-active web.service\n"
    if state is not RUNNING:
        assert result.reason == f"systemd unit web.service is {word}"


# --------------------------------------------------------------------------- timeouts


async def test_a_hung_monitor_is_killed_with_its_process_group_and_counts_as_a_failure(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "child"
    script(
        tmp_path / "resource.d" / "hang",
        f'trap "" TERM\nsleep 300 &\necho $! > {pidfile}\nwait\n',
    )
    agent = make_agent(
        spec("hang"),
        config(tmp_path / "resource.d"),
        init_dir=str(tmp_path),
        timeouts=AgentTimeouts(kill_grace=0.3),
    )
    start = trio.current_time()
    result = await monitor_agent(agent, timeout=0.5)
    assert result.state is FAILED
    assert result.reason == "monitor timed out after 0.5s"
    assert trio.current_time() - start < 0.5 + 0.3 + 2.0
    child = int(pidfile.read_text())
    assert await trio.to_thread.run_sync(_gone_within, child, 5.0)


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()
        except (FileNotFoundError, IndexError):
            return True
        if fields[0] == "Z":
            return True
        time.sleep(0.01)
    return False


# --------------------------------------------------------------------------- floating IP


async def test_floating_ip_monitor_reads_presence_through_netlink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = make_agent(spec("198.51.100.10/24/eth0"), config())
    assert isinstance(agent, FloatingIP)
    answers: list[Presence | None] = [
        Presence(interface="eth0", up=True, running=True),
        None,
        Presence(interface="eth0", up=False, running=False),
    ]
    asked: list[object] = []

    async def presence(address: object) -> Presence | None:
        asked.append(address)
        return answers.pop(0)

    monkeypatch.setattr(ipaddr_module, "netlink_presence", presence)
    states = [(await agent.monitor(5.0)) for _ in range(3)]
    assert [r.state for r in states] == [RUNNING, NOT_RUNNING, FAILED]
    assert states[1].reason == "198.51.100.10: the address is not configured on any interface"
    assert states[2].reason == "198.51.100.10: interface eth0 is down"
    assert asked == [ipaddress.ip_address("198.51.100.10")] * 3


async def test_a_netlink_error_is_a_failed_floating_ip_monitor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = make_agent(spec("198.51.100.10/24/eth0"), config())

    async def broken(address: object) -> Presence | None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(ipaddr_module, "netlink_presence", broken)
    result = await monitor_agent(agent, timeout=5.0)
    assert (result.state, result.reason) == (FAILED, "netlink: Permission denied")


# --------------------------------------------------------------------------- plugin agents


class PluginAgent:
    """A plugin agent: ``status`` only, or also the optional ``monitor``."""

    def __init__(self, *, status: bool = True) -> None:
        self.spec = spec("Thing")
        self._status = status

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def status(self) -> bool:
        return self._status


class Monitored(PluginAgent):
    def __init__(self, answer: object) -> None:
        super().__init__()
        self.answer = answer
        self.timeouts: list[float] = []

    async def monitor(self, timeout: float) -> object:
        self.timeouts.append(timeout)
        if isinstance(self.answer, Exception):
            raise self.answer
        if self.answer == "hang":
            await trio.sleep_forever()
        return self.answer


async def test_a_plugin_agent_without_monitor_is_checked_by_its_status() -> None:
    assert (await monitor_agent(PluginAgent(status=True), timeout=1)).state is RUNNING
    assert (await monitor_agent(PluginAgent(status=False), timeout=1)).state is NOT_RUNNING


@pytest.mark.parametrize(
    ("answer", "state", "reason"),
    [
        (True, RUNNING, ""),
        (False, NOT_RUNNING, "the agent says not running"),
        (ResourceError("Thing", "replication is broken"), FAILED, "replication is broken"),
        (RuntimeError("bug"), FAILED, "monitor crashed: RuntimeError: bug"),
        ("yes", FAILED, "monitor returned str, not a bool or a MonitorResult"),
    ],
)
async def test_a_plugin_monitor_answers_with_a_bool_or_raises_for_a_failure(
    answer: object, state: MonitorState, reason: str
) -> None:
    agent = Monitored(answer)
    result = await monitor_agent(agent, timeout=7)
    assert (result.state, result.reason) == (state, reason)
    assert agent.timeouts == [7]


async def test_a_plugin_monitor_may_return_its_own_result() -> None:
    own = MonitorResult(resource="Thing", state=FAILED, when="2026-01-01T00:00:00.000+00:00")
    assert await monitor_agent(Monitored(own), timeout=1) is own


async def test_a_hung_plugin_monitor_fails_at_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = trio.current_time()
    result = await monitor_agent(Monitored("hang"), timeout=20)
    assert (result.state, result.reason) == (FAILED, "monitor timed out after 20s")
    assert trio.current_time() - start == pytest.approx(20)


async def test_an_unusable_definition_is_never_running() -> None:
    agent = make_agent(spec("ocf:nonsense"), config())
    result = await monitor_agent(agent, timeout=1)
    assert (result.state, result.reason) == (
        NOT_RUNNING,
        "'ocf:nonsense' is not ocf:PROVIDER:TYPE",
    )


async def test_the_start_up_probe_checks_each_resource_once_in_order() -> None:
    results = await probe_group(
        [Monitored(True), PluginAgent(status=False), Monitored(ResourceError("Thing", "x"))],
        timeout=1,
    )
    assert [r.state for r in results] == [RUNNING, NOT_RUNNING, FAILED]
