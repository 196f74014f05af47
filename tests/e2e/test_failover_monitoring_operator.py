"""What an operator does around monitoring, for real (docs/resources.md#cleanup-and-maintenance).

The monitored prime/calc web pair of test_failover_monitoring.py (real ``pulse run``
daemons in network namespaces, the VIP served by the demo web script, ``curl`` polling
it from a client): ``pulsectl cleanup`` bringing a group moved by its monitor home under
``auto_failback on``; maintenance mode surviving a SIGKILL of the holder's pulse; a
monitor that hangs, killed at its timeout with its process group; and a group whose stop
failed during a restart in place, started on the peer only once a fence agent cut the
node off. Each of these is also tested in virtual time (tests/unit/test_scheduler_recovery.py,
tests/integration/test_plugins_virtual_time.py); here the daemons, scripts and kernel are real.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import pytest
from failover_support import (
    WebCluster,
    addresses,
    fetch,
    processes_matching,
    wait_past_startup_grace,
    web_cluster,
)
from monitoring_support import count_starts, kill_web, monitored

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Lan, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.100"
GROUP = VIP
PULSECTL = [sys.executable, "-c", "import sys; from pulse.cli.ctl import main; sys.exit(main())"]


class Client:
    """``curl`` asking the VIP every 0.1 s in a thread, for as long as the block lasts."""

    def __init__(self, web: WebCluster) -> None:
        self.web = web
        self.answers: list[tuple[float, str | None]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _poll(self) -> None:
        for _ in range(5000):  # bounded: the block ends long before
            if self._done.is_set():
                return
            self.answers.append((time.monotonic(), fetch(self.web.topology, self.web.client, VIP)))
            time.sleep(0.1)

    def longest_outage(self) -> float:
        """The longest time between two answered requests (seconds)."""
        served = [t for t, who in self.answers if who is not None]
        return max((b - a for a, b in itertools.pairwise(served)), default=0.0)

    def who(self) -> list[str | None]:
        """Who answered, consecutive repeats collapsed: ``['prime', None, 'calc']``."""
        out: list[str | None] = []
        for _, who in self.answers:
            if not out or out[-1] != who:
                out.append(who)
        return out


def pulsectl_status(socket: str) -> str:
    """``pulsectl status`` as an operator reads it."""
    argv = [*PULSECTL, "--socket", socket, "status"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True).stdout


def fail_counts(web: WebCluster, name: str, resource: str) -> dict[str, int]:
    """``fail_counts`` of *resource* in *name*'s ``pulsectl status --json``."""
    for r in web.nodes[name].group(GROUP)["resources"]:
        if r["name"] == resource:
            counts: dict[str, int] = r["fail_counts"]
            return counts
    raise KeyError(resource)


def edit_script(workdir: Path, names: list[str], script: str, old: str, new: str) -> None:
    """Replace *old* by *new* (once) in each node's resource.d/SCRIPT."""
    for name in names:
        path = workdir / name / "resource.d" / script
        text = path.read_text()
        assert old in text, f"{path} changed: {old!r} not found"
        path.write_text(text.replace(old, new, 1))


def settled(web: WebCluster, timeout: float = 15) -> None:
    """prime serves, calc agrees, and both are past their start-up grace."""
    web.serving("prime", timeout)
    web.nodes["calc"].wait_holder(GROUP, "prime", 5)
    wait_past_startup_grace(web.nodes.values())


def test_cleanup_brings_a_group_moved_by_its_monitor_home_under_auto_failback(
    topology: Topology, tmp_path: Path
) -> None:
    web = web_cluster(topology, tmp_path, ["prime", "calc"], vip=VIP, toml="", edit_toml=monitored)
    prime, calc = web.nodes["prime"], web.nodes["calc"]
    settled(web)

    with Client(web) as client:
        for kill in (1, 2, 3):
            # The monitor saw the server run again before the next kill (as in
            # test_failover_monitoring.py: a kill in the same second as the restart
            # tests the machine's process reaping, not pulse).
            wait_for(
                lambda n=kill - 1: prime.log().count("apache2 is running again on prime") >= n,
                15,
                "prime's monitor to see apache2 again",
            )
            time.sleep(1.0)
            kill_web(tmp_path, "prime")
        web.serving("calc", 15)
        calc.wait_holder(GROUP, "calc", 5)
        prime.wait_log("apache2 is not running on prime (3 times in 10m): moving 198.51.100.100")
        # Both nodes know prime's fail count: prime its own, calc from prime's report.
        wait_for(lambda: fail_counts(web, "calc", "apache2") == {"prime": 3}, 5, "calc to know")
        assert fail_counts(web, "prime", "apache2") == {"prime": 3}
        assert "fail counts: prime 3" in pulsectl_status(calc.socket)
        time.sleep(3.0)  # auto_failback on, yet prime refuses the group until cleanup
        assert calc.group(GROUP)["holder"] == "calc"

        reply = calc.ctl("cleanup")  # typed on calc; prime applies it too
        assert reply.ok, reply.error
        prime.wait_holder(GROUP, "prime", 15)
        calc.wait_holder(GROUP, "prime", 5)
        web.serving("prime", 10)
        time.sleep(2.0)  # served by prime through its first monitors
    assert client.who()[-1] == "prime", client.who()
    assert {w for w in client.who() if w is not None} == {"prime", "calc"}, client.who()
    assert client.longest_outage() < 8.0, f"{client.longest_outage():.2f}s\n{web.describe()}"
    for name in ("prime", "calc"):
        assert fail_counts(web, name, "apache2") == {}, name
    assert VIP not in addresses(topology, calc.node, "eth0")
    print(f"longest outage {client.longest_outage():.2f}s, answers {client.who()}")


def test_maintenance_keeps_everything_in_place_through_a_sigkill_of_the_holders_pulse(
    topology: Topology, tmp_path: Path
) -> None:
    def before_start(_: Lan) -> None:
        count_starts(tmp_path, ["prime", "calc"])

    web = web_cluster(
        topology, tmp_path, ["prime", "calc"], vip=VIP, toml="", edit_toml=monitored,
        before_start=before_start,
    )  # fmt: skip
    prime, calc = web.nodes["prime"], web.nodes["calc"]
    settled(web)
    starts = tmp_path / "prime" / "starts"
    assert starts.read_text().splitlines() == ["start"]

    assert calc.ctl("maintenance", "on").ok
    wait_for(lambda: prime.status()["resources"]["maintenance"], 5, "prime in maintenance")
    assert pulsectl_status(prime.socket).startswith("MAINTENANCE")
    with Client(web) as client:
        prime.kill()
        calc.wait_node("prime", "dead", 10)
        time.sleep(3.0)  # what calc would take over, it would have started by now
        assert VIP in addresses(topology, prime.node, "eth0")
        assert VIP not in addresses(topology, calc.node, "eth0")
        assert not (tmp_path / "calc" / "starts").exists()

        prime.start()  # learns maintenance mode from calc's report while starting
        prime.wait_log("maintenance mode on (calc)", 15)
        wait_for(lambda: calc.node_status("prime") == "active", 15, "calc to see prime again")
        assert calc.ctl("maintenance", "off").ok
        prime.wait_holder(GROUP, "prime", 15)
        calc.wait_holder(GROUP, "prime", 5)
        for node in (prime, calc):
            wait_for(
                lambda n=node: not pulsectl_status(n.socket).startswith("MAINTENANCE"),
                5,
                f"{node.name}'s status to drop MAINTENANCE",
            )
        # The monitors resume one interval later and find the server running.
        wait_for(
            lambda: prime.group(GROUP)["resources"][1]["state"] == "running",
            10,
            "prime's monitor to check apache2 after maintenance",
        )
    assert starts.read_text().splitlines() == ["start"], web.describe()
    assert not (tmp_path / "calc" / "starts").exists(), web.describe()
    assert client.who() == ["prime"], f"{client.who()}\n{web.describe()}"
    assert fail_counts(web, "prime", "apache2") == {}


def hung_status(workdir: Path) -> Callable[[Lan], None]:
    """Make each node's web script hang in ``status`` (a child too) once ``hang`` exists."""
    marker = "status)\n"
    hang = (
        "status)\n"
        f"    if [ -e {workdir}/hang ]; then rm -f {workdir}/hang;"
        " sleep 987654 & sleep 987655; fi\n"
    )

    def before_start(_: Lan) -> None:
        edit_script(workdir, ["prime", "calc"], "apache2", marker, hang)

    return before_start


def with_monitor_timeout(text: str) -> str:
    text, n = re.subn(r'timeout = "5s"', 'timeout = "2s"', monitored(text))
    assert n == 1, text
    return text


def test_a_hung_monitor_is_killed_at_its_timeout_with_its_children_and_counts_as_a_failure(
    topology: Topology, tmp_path: Path
) -> None:
    web = web_cluster(
        topology, tmp_path, ["prime", "calc"], vip=VIP, toml="", edit_toml=with_monitor_timeout,
        before_start=hung_status(tmp_path),
    )  # fmt: skip
    prime = web.nodes["prime"]
    settled(web)
    assert not processes_matching("sleep 98765")

    (tmp_path / "hang").touch()
    wait_for(lambda: bool(processes_matching("sleep 98765")), 5, "the monitor to hang")
    prime.wait_log("restarted apache2 in place on prime", 15)
    web.serving("prime", 10)
    assert not processes_matching("sleep 98765"), "the hung monitor left processes behind"
    assert fail_counts(web, "prime", "apache2") == {"prime": 1}
    (apache2,) = [r for r in prime.group(GROUP)["resources"] if r["name"] == "apache2"]
    assert apache2["last_failure"]["state"] == "failed"
    assert "timed out after 2s" in apache2["last_failure"]["reason"], apache2
    assert prime.group(GROUP)["holder"] == "prime"


FENCE_AGENT = """\
#!/bin/sh
# A fence agent speaking fence-agents' stdin protocol (contrib/pulse-stonith/README.md):
# records its call, then does what a reboot of prime does.
input=$(cat)
printf 'attempt %s %s\\n' "$(date +%s.%N)" "$(printf '%s' "$input" | tr '\\n' ' ')" >> {record}
/bin/kill -KILL -- -"$(cat {pulse_pid})" || exit 1
kill "$(cat {web_pid})" 2>/dev/null
ip netns exec "$(cat {netns})" ip addr del {vip}/24 dev eth0 2>/dev/null
printf 'fenced %s\\n' "$(date +%s.%N)" >> {record}
exit 0
"""

DB_SCRIPT = """\
#!/bin/sh
# A Heartbeat-style resource script whose stop fails while {workdir}/stop-fails exists.
case "$1" in
start) date +%s.%N >> {workdir}/db-starts; touch {workdir}/db-running ;;
stop) [ -e {workdir}/stop-fails ] && {{ echo "db: cannot stop" >&2; exit 1; }}
      rm -f {workdir}/db-running ;;
status) if [ -e {workdir}/db-running ]; then echo running; else echo stopped; fi ;;
esac
exit 0
"""


def test_a_group_whose_stop_failed_in_a_restart_is_started_on_the_peer_only_once_fenced(
    topology: Topology, tmp_path: Path
) -> None:
    pytest.importorskip("pulse_stonith", reason="contrib/pulse-stonith is not installed")
    record, pulse_pid = tmp_path / "fence-record", tmp_path / "prime-pulse.pid"
    agent, netns = tmp_path / "fence_lab", tmp_path / "prime-netns"

    def before_start(_: Lan) -> None:
        for name in ("prime", "calc"):
            db = tmp_path / name / "resource.d" / "db"
            db.write_text(DB_SCRIPT.format(workdir=tmp_path / name))
            db.chmod(0o755)

    def edit(text: str) -> str:
        text = monitored(text).replace(
            f'resources = ["{VIP}", "apache2"]', f'resources = ["{VIP}", "apache2", "db"]'
        )
        agent.write_text(
            FENCE_AGENT.format(
                record=shlex.quote(str(record)), pulse_pid=shlex.quote(str(pulse_pid)),
                web_pid=shlex.quote(str(tmp_path / "prime" / "demo-web.pid")),
                netns=shlex.quote(str(netns)), vip=VIP,
            )
        )  # fmt: skip
        agent.chmod(0o755)
        return text

    # One stop retry (1 s) instead of ten; calc's device fences prime (on prime the same
    # device is inert: a device never fences the node it runs on).
    extra = f"""
[resources]
stop_retries = 1

[plugins.stonith]
[[plugins.stonith.devices]]
kind = "fence-agent"
name = "lab-pdu"
agent = "{agent}"
hosts = ["prime"]
timeout = 10
"""
    web = web_cluster(
        topology, tmp_path, ["prime", "calc"], vip=VIP, toml=extra, edit_toml=edit,
        before_start=before_start,
    )  # fmt: skip
    prime, calc = web.nodes["prime"], web.nodes["calc"]
    assert prime.proc is not None
    pulse_pid.write_text(str(prime.proc.pid))  # what the fence agent kills
    netns.write_text(prime.node.netns)
    settled(web)

    (tmp_path / "prime" / "stop-fails").touch()
    kill_web(tmp_path, "prime")
    prime.wait_log("restart of apache2 could not stop it", 15)
    wait_for(lambda: prime.group(GROUP)["state"] == "failed", 5, "the group FAILED on prime")
    time.sleep(3.0)  # calc goes on seeing prime hold it, and starts nothing
    assert calc.group(GROUP)["holder"] == "prime"
    assert not (tmp_path / "calc" / "db-starts").exists()
    assert VIP not in addresses(topology, calc.node, "eth0")
    assert not record.exists()

    web.cut("prime")  # prime looks dead to calc: only fencing makes a takeover safe
    calc.wait_holder(GROUP, "calc", 20)
    web.serving("calc", 10)
    lines = record.read_text().splitlines()
    attempts = [ln for ln in lines if ln.startswith("attempt ")]
    fenced = [float(ln.split()[1]) for ln in lines if ln.startswith("fenced ")]
    assert len(attempts) == 1 and "plug=prime" in attempts[0], lines
    (calc_start,) = (float(t) for t in (tmp_path / "calc" / "db-starts").read_text().split())
    assert fenced[0] < calc_start, lines
    log = calc.log()
    assert log.index("prime fenced by lab-pdu") < log.index("took over"), web.describe()
    assert prime.proc.wait(timeout=5) is not None  # the agent cut prime off
    assert VIP not in addresses(topology, prime.node, "eth0")
    assert os.path.exists(tmp_path / "prime" / "db-running")  # the stuck db, left as it was
