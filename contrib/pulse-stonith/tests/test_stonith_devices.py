"""The devices against real programs: cluster-glue's ``stonith`` and fence-agent scripts."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
import trio
from pulse_stonith import FencingError, build_devices
from pulse_stonith.devices import (
    STONITH_PROGRAM,
    ClusterGlueDevice,
    FenceAgentDevice,
    RequireFencing,
    agent_input,
    glue_reason,
)
from pulse_stonith.settings import AgentDeviceSpec, GlueDeviceSpec, Settings

from pulse.config.model import Source

needs_glue = pytest.mark.skipif(
    not os.access(STONITH_PROGRAM, os.X_OK),
    reason="cluster-glue's stonith is not installed (apt-get install cluster-glue)",
)


def glue(typ: str = "null", params: str = "prime calc", **kw: object) -> ClusterGlueDevice:
    spec = GlueDeviceSpec(name=typ, type=typ, params=params, **kw)  # type: ignore[arg-type]
    return ClusterGlueDevice(spec, local="calc", host_list_ttl=3600.0)


def script(tmp_path: Path, body: str, name: str = "fence_test") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# --------------------------------------------------------------------------- cluster-glue


@needs_glue
async def test_null_device_lists_its_hosts_and_fences_one_of_them() -> None:
    device = glue(params="Prime calc other")
    assert device.can_fence("prime")  # not asked yet: try it, as Heartbeat would
    await device.refresh()
    assert device.hosts == frozenset({"prime", "calc", "other"})
    assert device.can_fence("prime") and device.can_fence("other")
    assert not device.can_fence("calc")  # never this node itself
    assert not device.can_fence("nobody")
    await device.fence("prime")


@needs_glue
async def test_fencing_a_host_the_device_does_not_list_fails_with_its_list() -> None:
    device = glue(params="prime")
    with pytest.raises(FencingError, match=r"does not control other \(it lists: prime\)"):
        await device.fence("other")


@needs_glue
async def test_glue_failures_are_explained_from_the_exit_code_and_cluster_glue_log() -> None:
    with pytest.raises(FencingError) as unknown:
        await glue(typ="nosuch").fence("prime")
    assert "unknown device type nosuch" in str(unknown.value)
    assert "Invalid device type: 'nosuch'" in str(unknown.value)

    with pytest.raises(FencingError, match="bad configuration"):
        await glue(typ="external/ipmi", params="only two", hosts=("prime",)).fence("prime")

    # Told (wrongly) that it controls "other", external/ssh refuses to reset it.
    with pytest.raises(FencingError, match=r"the reset failed: .*'ssh reset' for host other"):
        await glue(typ="external/ssh", params="prime", hosts=("other",)).fence("other")


@needs_glue
async def test_an_unreachable_device_keeps_the_last_host_list_and_says_so() -> None:
    device = glue(typ="external/ipmi", params="x")
    await device.refresh()
    assert device.hosts is None and device.can_fence("prime")
    assert device.last_problem is not None and "bad configuration" in device.last_problem


async def test_glue_parameters_go_through_a_private_file_not_the_command_line(
    tmp_path: Path,
) -> None:
    record = tmp_path / "record"
    fake = script(
        tmp_path,
        f'echo "$@" > {record}\n'
        f'stat -c %a "$4" >> {record}\n'
        f'cat "$4" >> {record}\n'
        'echo "stonith: [1]: CRIT: reset failed" > "$HA_logfile"\n'
        "exit 5\n",
        name="stonith",
    )
    spec = GlueDeviceSpec(name="d", type="external/ipmi", params="prime 10.0.0.5 admin s3cret")
    device = ClusterGlueDevice(spec, local="calc", host_list_ttl=60.0, program=fake)
    device.hosts, device.hosts_at = frozenset({"prime"}), trio.current_time()
    with pytest.raises(FencingError) as failed:
        await device.fence("Prime")
    assert str(failed.value) == "the reset failed: stonith: [1]: CRIT: reset failed"
    argv, mode, params = record.read_text().splitlines()
    assert argv.split()[:3] == ["-t", "external/ipmi", "-F"]
    assert argv.split()[4:] == ["-T", "reset", "prime"]
    assert "s3cret" not in argv
    assert (mode, params) == ("600", "prime 10.0.0.5 admin s3cret")
    assert not await trio.Path(argv.split()[3]).exists()  # removed afterwards


async def test_off_action_asks_cluster_glue_to_power_off(tmp_path: Path) -> None:
    record = tmp_path / "record"
    fake = script(tmp_path, f'echo "$@" > {record}\n', name="stonith")
    spec = GlueDeviceSpec(name="d", type="null", params="prime", action="off", hosts=("prime",))
    await ClusterGlueDevice(spec, local="calc", host_list_ttl=60.0, program=fake).fence("prime")
    assert record.read_text().split()[-3:] == ["-T", "off", "prime"]


def test_every_cluster_glue_exit_code_has_words() -> None:
    assert glue_reason(4, type="null", node="x") == "the device does not know host x"
    assert glue_reason(2, type="t") == "cannot access the device (address, login or password?)"
    assert glue_reason(42, type="t") == "stonith exited with status 42"


# --------------------------------------------------------------------------- fence-agents


def agent(path: str, **kw: object) -> FenceAgentDevice:
    spec = AgentDeviceSpec(name="agent", agent=path, **kw)  # type: ignore[arg-type]
    return FenceAgentDevice(spec, local="calc", nodes=("prime", "calc", "third"))


def test_fence_agent_input_is_key_value_lines_with_action_and_plug() -> None:
    spec = AgentDeviceSpec(
        name="ipmi",
        agent="fence_ipmilan",
        options=(("ip", "10.0.0.5"), ("username", "admin"), ("password", "secret")),
        action="off",
        host_map=(("prime", "bmc-prime"),),
    )
    assert agent_input(spec, "prime") == (
        b"ip=10.0.0.5\nusername=admin\npassword=secret\naction=off\nplug=bmc-prime\n"
        b"nodename=prime\n"
    )
    port = AgentDeviceSpec(name="x", agent="fence_x", plug_option="port")
    assert agent_input(port, "calc") == b"action=reboot\nport=calc\nnodename=calc\n"


async def test_fence_agent_gets_its_options_on_stdin_and_exit_0_is_success(
    tmp_path: Path,
) -> None:
    record = tmp_path / "stdin"
    path = script(tmp_path, f"cat > {record}\n")
    device = agent(path, options=(("ip", "10.0.0.5"),))
    assert device.can_fence("prime") and device.can_fence("third")
    assert not device.can_fence("calc") and not device.can_fence("stranger")
    await device.fence("PRIME")
    assert record.read_text() == "ip=10.0.0.5\naction=reboot\nplug=prime\nnodename=prime\n"


async def test_a_failing_fence_agent_reports_its_exit_status_and_last_error(
    tmp_path: Path,
) -> None:
    path = script(
        tmp_path, "echo 'ERROR: Failed: Unable to obtain correct plug status' >&2\nexit 1\n"
    )
    with pytest.raises(FencingError) as failed:
        await agent(path).fence("prime")
    assert str(failed.value) == (
        "fence_test action=reboot for prime failed (exit 1): "
        "ERROR: Failed: Unable to obtain correct plug status"
    )


async def test_a_hung_fence_agent_is_killed_at_its_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    path = script(tmp_path, f"echo $$ > {pidfile}\nexec sleep 30\n")
    with pytest.raises(FencingError, match=r"fence_test did not finish within 0.5s"):
        await agent(path, timeout=0.5).fence("prime")
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_missing_fence_agent_is_a_clear_failure() -> None:
    with pytest.raises(FencingError, match="fence agent fence_nothere_at_all not found"):
        await agent("fence_nothere_at_all").fence("prime")


# --------------------------------------------------------------------------- policy


async def test_require_fencing_claims_only_nodes_no_device_can_fence_and_always_fails(
    tmp_path: Path,
) -> None:
    real = agent(script(tmp_path, "exit 0\n"), hosts=("prime",))
    guard = RequireFencing([real], local="calc")
    assert not guard.can_fence("prime")  # a real device will
    assert guard.can_fence("third") and not guard.can_fence("calc")
    with pytest.raises(FencingError, match="no fencing device can fence third"):
        await guard.fence("third")


def test_build_devices_adds_the_policy_guard_last_only_when_required() -> None:
    from test_stonith_settings import config

    spec = GlueDeviceSpec(name="g", type="null", params="prime", where=Source("f", 1))
    relaxed = build_devices(Settings(devices=(spec,)), config(), "calc")
    strict = build_devices(Settings(devices=(spec,), require_fencing=True), config(), "calc")
    assert [type(d).__name__ for d in relaxed] == ["ClusterGlueDevice"]
    assert [type(d).__name__ for d in strict] == ["ClusterGlueDevice", "RequireFencing"]
    assert shutil.which("sh")
