"""The Heartbeat interop harness (pulse_lab.heartbeat) against real Heartbeat 3.0.6.

These tests prove the harness itself: two stock heartbeat daemons, each in its own network
and mount namespace, find each other, report each other through ``cl_status``, and notice
a crashed or departing peer within the configured timers. Pulse interop tests build on the
same harness (see docs/interop.md).

Timers: keepalive 1 s, deadtime 3 s, warntime 2 s, initdead 6 s. Heartbeat advertises
``dt`` = deadtime + 2 s during its first 5 s (docs/heartbeat.md#liveness), so the crash test
waits until the victim has run for more than 5 s before killing it; only then does
"deadtime + margin" hold.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from pulse_lab.heartbeat import (
    HeartbeatNode,
    HeartbeatPeerError,
    HeartbeatPeers,
    PeerLayout,
    ha_cf_value,
    missing_prerequisites,
    render_ha_cf,
)
from pulse_lab.netns import Topology

KEEPALIVE = 1.0
DEADTIME = 3.0
# Extra dt heartbeat advertises during its first 5 s of life (docs/heartbeat.md#liveness).
STARTUP_GRACE = 5.0
# Heartbeat checks timers every 250 ms; cl_status is polled every 100 ms.
MARGIN = 1.5
ACTIVE_TIMEOUT = 15.0
AUTHKEYS = "auth 1\n1 sha1 pulse-harness-secret\n"
SUBNET = "198.51.100.0/24"


# ---- pure helpers (no namespaces needed) ------------------------------------------------


def test_ha_cf_value_is_the_last_token_of_the_last_line_outside_comments() -> None:
    ha_cf = "logfile /a # logfile /b\nkeepalive 1, 2\n#logfile /c\nlogfile /d\n"
    assert ha_cf_value(ha_cf, "logfile") == "/d"
    assert ha_cf_value(ha_cf, "keepalive") == "2"
    assert ha_cf_value(ha_cf, "deadtime") is None


def test_rendered_ha_cf_sets_udpport_before_media_and_disables_realtime(tmp_path: Path) -> None:
    text = render_ha_cf(nodes=["hb1", "hb2"], media=["bcast eth0"], logdir=tmp_path)
    lines = text.splitlines()
    assert lines.index("udpport 694") < lines.index("bcast eth0")
    assert "realtime off" in lines
    assert lines[-1] == "node hb1 hb2"
    assert ha_cf_value(text, "logfile") == str(tmp_path / "ha-log")


def test_paths_heartbeat_sees_map_into_the_private_workdir(tmp_path: Path) -> None:
    layout = PeerLayout(workdir=tmp_path)
    assert layout.host_path("/etc/ha.d/ha.cf") == tmp_path / "ha.d" / "ha.cf"
    assert layout.host_path("/var/lib/heartbeat/hb_uuid") == tmp_path / "lib" / "hb_uuid"
    assert layout.host_path("/var/run/heartbeat.pid") == tmp_path / "run" / "heartbeat.pid"
    assert layout.host_path("/run/heartbeat/register") == tmp_path / "run/heartbeat/register"
    assert layout.host_path("/var/log/ha-log") == Path("/var/log/ha-log")


def test_a_logfile_outside_the_workdir_is_refused(tmp_path: Path) -> None:
    nothing = cast(Any, None)
    with pytest.raises(ValueError, match="outside"):
        HeartbeatNode(
            nothing,
            nothing,
            name="hb1",
            ha_cf="logfile /var/log/ha-log\nnode hb1\n",
            authkeys=AUTHKEYS,
            workdir=tmp_path,
        )


def test_a_missing_logfile_directive_is_refused(tmp_path: Path) -> None:
    nothing = cast(Any, None)
    with pytest.raises(ValueError, match="logfile"):
        HeartbeatNode(
            nothing, nothing, name="hb1", ha_cf="node hb1\n", authkeys=AUTHKEYS, workdir=tmp_path
        )


def test_logs_inside_the_private_var_lib_heartbeat_are_accepted(tmp_path: Path) -> None:
    nothing = cast(Any, None)
    peer = HeartbeatNode(
        nothing,
        nothing,
        name="hb1",
        ha_cf="logfile /var/lib/heartbeat/ha-log\nnode hb1\n",
        authkeys=AUTHKEYS,
        workdir=tmp_path,
    )
    assert peer.logfile == tmp_path.resolve() / "lib" / "ha-log"
    assert peer.debugfile is None


# ---- real heartbeat in namespaces ---------------------------------------------------------


@pytest.fixture
def peers(topology: Topology, tmp_path: Path) -> Iterator[HeartbeatPeers]:
    missing = missing_prerequisites()
    if missing:
        pytest.skip("real Heartbeat unavailable: " + "; ".join(missing))
    with HeartbeatPeers(topology, tmp_path / "peers") as owned:
        yield owned


@pytest.fixture
def pair(topology: Topology, peers: HeartbeatPeers, tmp_path: Path) -> tuple[HeartbeatNode, ...]:
    """hb1 (198.51.100.11) and hb2 (198.51.100.12) on one LAN, bcast eth0, not started."""
    lan = topology.add_lan("hblan", SUBNET)
    made = []
    for index, name in enumerate(("hb1", "hb2"), start=11):
        node = topology.add_node(name)
        topology.connect(node, lan, "eth0", f"198.51.100.{index}/24")
        ha_cf = render_ha_cf(
            nodes=["hb1", "hb2"],
            media=["bcast eth0"],
            logdir=tmp_path / "peers" / name / "log",
            keepalive=f"{KEEPALIVE:g}",
            deadtime=f"{DEADTIME:g}",
        )
        made.append(peers.add(node, name=name, ha_cf=ha_cf, authkeys=AUTHKEYS))
    return tuple(made)


def _host_state() -> tuple[list[str], bool]:
    """What a leaking harness would change on the host: /etc/ha.d and the pid file."""
    ha_d = sorted(p.name for p in Path("/etc/ha.d").iterdir()) if Path("/etc/ha.d").exists() else []
    return ha_d, Path("/run/heartbeat.pid").exists()


@pytest.mark.netns
@pytest.mark.heartbeat
def test_two_heartbeat_nodes_go_active_and_a_killed_peer_is_dead_within_deadtime(
    pair: tuple[HeartbeatNode, ...],
) -> None:
    hb1, hb2 = pair
    host_before = _host_state()

    hb1.start()
    hb2.start()
    hb2_started = time.monotonic()
    hb1.wait_nodestatus("hb2", "active", ACTIVE_TIMEOUT)
    hb2.wait_nodestatus("hb1", "active", ACTIVE_TIMEOUT)
    assert hb1.cl_status("nodestatus", "hb1") == "active"
    assert hb1.cl_status("hbstatus") == "Heartbeat is running on this machine."
    assert sorted(hb1.cl_status("listnodes").split()) == ["hb1", "hb2"]
    assert hb1.wait_log(r"Comm_now_up\(\): updating status to active", 1.0)

    # Let hb2's advertised dt drop from deadtime + 2 s back to deadtime before the crash.
    remaining = STARTUP_GRACE + KEEPALIVE - (time.monotonic() - hb2_started)
    if remaining > 0:
        time.sleep(remaining)
    mark = hb1.mark()
    hb2.kill()
    assert not hb2.running

    detected = hb1.wait_nodestatus("hb2", "dead", DEADTIME + MARGIN)
    assert detected <= DEADTIME + MARGIN
    assert hb1.wait_log(r"WARN: node hb2: is dead", 2.0, since=mark)
    assert hb1.wait_log(r"Link hb2:eth0 dead\.", 2.0, since=mark)
    assert hb1.cl_status_result("nodestatus", "hb2").returncode == 1
    assert hb1.running
    assert _host_state() == host_before


@pytest.mark.netns
@pytest.mark.heartbeat
def test_a_gracefully_stopped_heartbeat_announces_its_shutdown_to_the_peer(
    pair: tuple[HeartbeatNode, ...],
) -> None:
    hb1, hb2 = pair
    hb1.start()
    hb2.start()
    hb1.wait_nodestatus("hb2", "active", ACTIVE_TIMEOUT)
    # Stopping during the start-up resource exchange would be delayed until it finishes.
    hb2.wait_log(r"Initial resource acquisition complete", ACTIVE_TIMEOUT)
    mark = hb1.mark()

    hb2.stop(timeout=20.0)

    assert not hb2.running
    assert hb2.log_lines(r"hb2 Heartbeat shutdown complete\.")
    assert hb1.wait_log(r"Received shutdown notice from 'hb2'\.", 2.0, since=mark)
    # The notice does not mark hb2 dead by itself: that still takes the dead time.
    hb1.wait_nodestatus("hb2", "dead", DEADTIME + 2 * MARGIN)


@pytest.mark.netns
@pytest.mark.heartbeat
def test_a_refused_configuration_fails_start_with_heartbeats_own_reason(
    topology: Topology, peers: HeartbeatPeers, tmp_path: Path
) -> None:
    node = topology.add_node("hb1")
    ha_cf = render_ha_cf(
        nodes=["hb1", "hb2"], media=["bcast lo"], logdir=tmp_path / "peers" / "hb1" / "log"
    )
    # Group/other-readable keys are refused by heartbeat (docs/heartbeat.md#authkeys).
    peer = peers.add(node, name="hb1", ha_cf=ha_cf, authkeys=AUTHKEYS, authkeys_mode=0o644)

    with pytest.raises(HeartbeatPeerError, match=r"Bad permissions on keyfile"):
        peer.start()

    assert not peer.running
