"""SIGTERM handling of a whole daemon, in a child process so that a regression kills
the child and not the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import trio

    from pulse.config import Loaded
    from pulse.config.model import AuthKey, AuthKeys, AuthMethod, BcastMedium, Config
    from pulse.daemon import DaemonOptions, serve
    from pulse.testing import FakeLink, FakeNetwork


    class SignalledOnStart(FakeLink):
        # The first thing a link does is the moment peers can start to see the node.
        async def run(self, inbound, *, task_status=trio.TASK_STATUS_IGNORED):
            os.kill(os.getpid(), signal.SIGTERM)
            await super().run(inbound, task_status=task_status)


    async def main() -> None:
        config = Config(
            nodes=("alpha", "beta"),
            media=(BcastMedium(interface="eth0"),),
            auth=AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.SHA1, key=b"k"),)),
        )
        options = DaemonOptions(
            state_dir=Path(sys.argv[1]), generation=1, uuid=bytes(16), loadavg=lambda: "n/a"
        )
        link = SignalledOnStart(FakeNetwork(), "alpha", "eth0")
        with trio.fail_after(10):
            await serve(Loaded(config=config, node="alpha", warnings=()), options, links=[link])
        print("clean shutdown", link.stats.packets_sent)


    trio.run(main)
    """
)


def test_sigterm_as_soon_as_a_link_runs_shuts_down_cleanly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[:2] == ["clean", "shutdown"]
    assert int(words[2]) >= 1  # its shutdone left before it stopped
