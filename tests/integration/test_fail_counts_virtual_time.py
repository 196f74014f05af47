"""Each node's status shows every node's fail counts, in virtual time
(docs/resources.md#cleanup-and-maintenance): prime's counts reach calc in prime's
``resource`` reports (``pulse_fail_counts``), and a cleanup clears them everywhere.

The two daemons, the monitored ``Fake::web`` and "killing the service" are those of
test_recovery_virtual_time.py.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from daemon_support import start_daemons
from recovery_support import KEY, MONITORED, kill, web_status

from pulse.cli.ctl import format_status
from pulse.control.status import node_status
from pulse.testing import FakeNetwork
from pulse.testing.agents import FakeResources


async def test_the_peer_s_status_shows_the_holder_s_fail_counts_until_cleanup(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    world = FakeResources()
    network = FakeNetwork()
    async with trio.open_nursery() as nursery:
        daemons = await start_daemons(nursery, MONITORED, world, network, tmp_path)
        prime, calc = daemons["prime"], daemons["calc"]
        await trio.sleep(15)
        assert web_status(calc)["fail_counts"] == {}

        kill(world, "prime")
        await trio.sleep(3)  # found at the next check (every 2 s), restarted in place
        assert world.where("web") == {"prime"}
        assert web_status(prime)["fail_counts"] == {"prime": 1}
        assert web_status(calc)["fail_counts"] == {"prime": 1}  # from prime's report
        assert f"  {KEY}: " in format_status(node_status(calc))
        assert "fail counts: prime 1)" in format_status(node_status(calc))

        for _ in range(2):
            await trio.sleep(3)
            kill(world, "prime")
        await trio.sleep(5)  # the third failure moves web to calc
        assert world.where("web") == {"calc"}
        assert web_status(calc)["fail_counts"] == {"prime": 3}

        assert await calc.resources.command("cleanup", KEY) is None
        await trio.sleep(5)  # prime forgets, reports it, and web comes home
        assert world.where("web") == {"prime"}
        assert web_status(calc)["fail_counts"] == {}
        assert web_status(prime)["fail_counts"] == {}
        nursery.cancel_scope.cancel()
