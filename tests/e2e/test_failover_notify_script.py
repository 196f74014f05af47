"""[[notify]] scripts in a real failover: real daemons in namespaces, a real cut, and a
program that writes its environment to a file (docs/operations.md, "Notify scripts")."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from failover_support import wait_past_startup_grace, web_cluster

from pulse_lab.cluster import wait_for
from pulse_lab.netns import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.100"
RECORDER = (
    "import json, os, sys\n"
    "env = {k: v for k, v in os.environ.items() if k.startswith('PULSE_')}\n"
    "open(sys.argv[1], 'a').write(json.dumps(env) + chr(10))\n"
)


def test_a_notify_script_writes_the_takeover_of_the_vip_during_a_real_failover(
    topology: Topology, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    toml = (
        "[[notify]]\n"
        f"command = {json.dumps([sys.executable, '-c', RECORDER, str(events)])}\n"
        'events = ["node-dead", "acquired", "released"]\n'
        'timeout = "5s"\n'
    )
    web = web_cluster(topology, tmp_path, ["prime", "calc"], vip=VIP, toml=toml)
    web.serving("prime", 15)
    web.nodes["calc"].wait_holder(VIP, "prime", 5)
    wait_past_startup_grace(web.nodes.values())

    web.cut("prime")
    web.serving("calc", 6)

    def recorded() -> list[dict[str, str]]:
        if not events.exists():
            return []
        return [json.loads(line) for line in events.read_text().splitlines()]

    def calc_took_it() -> bool:
        return any(
            e["PULSE_LOCAL"] == "calc" and e["PULSE_EVENT"] == "acquired" for e in recorded()
        )

    wait_for(calc_took_it, 10, "calc's notify script to record the takeover")
    dead = [e for e in recorded() if e["PULSE_EVENT"] == "node-dead" and e["PULSE_LOCAL"] == "calc"]
    assert dead and dead[0]["PULSE_NODE"] == "prime"
    taken = next(
        e for e in recorded() if e["PULSE_LOCAL"] == "calc" and e["PULSE_EVENT"] == "acquired"
    )
    assert taken["PULSE_GROUP"] == VIP
    assert taken["PULSE_REASON"].startswith(f"took over {VIP}: prime dead at")
    assert "T" in taken["PULSE_TIME"] and float(taken["PULSE_TIMESTAMP"]) > 1e9
