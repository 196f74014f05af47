"""Script agents against real programs: Debian's OCF Dummy, an LSB init script, a hung script.

No network is touched, so these run in the test's own namespace; they need
resource-agents (``/usr/lib/ocf/resource.d/heartbeat/Dummy``) and ``/bin/sh``.
"""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pytest
import trio

from pulse.config.model import AuthKeys, Config, ResourceSpec
from pulse.resources import AgentTimeouts, ResourceError, acquire_group, make_agent, release_group

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
LOG = logging.getLogger("pulse.test.agents")

LSB_SCRIPT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          webapp
# Short-Description: test service kept as a state file
### END INIT INFO
STATE="$(dirname "$0")/webapp.state"
case "$1" in
  start)  echo "$$" > "$STATE"; echo "Starting webapp";;
  stop)   rm -f "$STATE"; echo "Stopping webapp";;
  status)
    if [ -f "$STATE" ]; then echo "webapp is running"; exit 0; fi
    echo "webapp is not running"; exit 3;;
  *) echo "Usage: $0 {start|stop|status}"; exit 2;;
esac
exit 0
"""


def config(resource_dir: Path) -> Config:
    return Config(
        nodes=("prime", "backup"),
        media=(),
        auth=AuthKeys(outbound=1, keys=()),
        resource_dir=str(resource_dir),
    )


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.mark.skipif(not DUMMY.exists(), reason="resource-agents is not installed")
async def test_real_ocf_dummy_starts_reports_and_stops(tmp_path: Path) -> None:
    spec = ResourceSpec(raw="ocf:heartbeat:Dummy", agent="ocf:heartbeat:Dummy")
    agent = make_agent(spec, config(tmp_path), env={"HA_RSCTMP": str(tmp_path)})
    state = tmp_path / "Dummy-Dummy.state"

    assert await agent.status() is False
    await agent.start()
    assert state.exists()
    assert await agent.status() is True
    await agent.stop()
    assert not state.exists()
    assert await agent.status() is False
    await agent.stop()  # OCF_NOT_RUNNING / success either way: stop is idempotent


@pytest.mark.skipif(not DUMMY.exists(), reason="resource-agents is not installed")
async def test_real_ocf_dummy_takes_its_state_file_from_a_parameter(tmp_path: Path) -> None:
    state = tmp_path / "custom.state"
    word = f"ocf:heartbeat:Dummy::state={state}"
    spec = ResourceSpec(raw=word, agent="ocf:heartbeat:Dummy", args=(f"state={state}",))
    agent = make_agent(spec, config(tmp_path), env={"HA_RSCTMP": str(tmp_path)})
    await agent.start()
    assert state.exists()
    await agent.stop()
    assert not state.exists()


async def test_lsb_script_and_heartbeat_script_in_one_group(tmp_path: Path) -> None:
    rdir, idir = tmp_path / "resource.d", tmp_path / "init.d"
    rdir.mkdir()
    idir.mkdir()
    executable(idir / "webapp", LSB_SCRIPT)
    # A Heartbeat-style resource.d script: arguments first, status judged by its text.
    executable(
        rdir / "Flag",
        '#!/bin/sh\nF="$(dirname "$0")/flag-$1"\n'
        'case "$2" in start) touch "$F";; stop) rm -f "$F";;\n'
        '  status) [ -f "$F" ] && echo "Flag $1 Running OK" || echo "Flag $1 is stopped";;\n'
        "esac\nexit 0\n",
    )
    cfg = config(rdir)
    words = [("Flag::one", "Flag", ("one",)), ("webapp", "webapp", ())]
    agents = [
        make_agent(ResourceSpec(raw=raw, agent=name, args=args), cfg, init_dir=str(idir))
        for raw, name, args in words
    ]
    acquired = await acquire_group(agents, log=LOG, node="prime")
    assert acquired.ok, acquired.reason
    assert acquired.started == ("Flag::one", "webapp")
    assert (rdir / "flag-one").exists() and (idir / "webapp.state").exists()
    assert [await a.status() for a in agents] == [True, True]

    again = await acquire_group(agents, log=LOG, node="prime")
    assert again.ok and again.started == ()  # both already running: nothing started

    released = await release_group(agents, log=LOG, node="prime")
    assert released.ok
    assert released.stopped == ("webapp", "Flag::one")
    assert [await a.status() for a in agents] == [False, False]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"


def _all_gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.02)
    return all(_gone(p) for p in pids)


async def test_hung_start_is_killed_at_its_timeout_with_everything_it_spawned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pids = tmp_path / "pids"
    executable(
        tmp_path / "hangs",
        "#!/bin/sh\n"
        'trap "" TERM\n'  # ignores SIGTERM: only the SIGKILL after the grace ends it
        f"sleep 600 &\necho $$ $! > {pids}\n"
        "wait\n",
    )
    spec = ResourceSpec(raw="hangs", agent="hangs")
    timeouts = AgentTimeouts(start=1.0, kill_grace=1.0)
    agent = make_agent(spec, config(tmp_path), timeouts=timeouts)

    began = time.monotonic()
    with pytest.raises(ResourceError) as info:
        await agent.start()
    took = time.monotonic() - began

    assert info.value.reason == f"{tmp_path / 'hangs'} start timed out after 1 s"
    assert 1.0 <= took < 1.0 + 1.0 + 1.5
    spawned = [int(p) for p in pids.read_text().split()]
    assert await trio.to_thread.run_sync(_all_gone, spawned, 5.0)


async def test_script_that_exits_on_sigterm_is_not_waited_for_the_whole_grace(
    tmp_path: Path,
) -> None:
    executable(tmp_path / "slow", "#!/bin/sh\nexec sleep 600\n")
    agent = make_agent(
        ResourceSpec(raw="slow", agent="slow"),
        config(tmp_path),
        timeouts=AgentTimeouts(status=0.5, kill_grace=30.0),
    )
    began = time.monotonic()
    with pytest.raises(ResourceError, match=r"timed out after 0\.5 s"):
        await agent.status()
    assert time.monotonic() - began < 5.0
