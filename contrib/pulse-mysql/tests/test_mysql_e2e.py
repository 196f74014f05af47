"""Two real pulse daemons in namespaces, each with its own real mariadbd.

node01 runs the primary and holds ``MySQLReplica::defaults_file=mysql.cnf 198.51.100.100``;
node02's mariadbd replicates from node01 over the LAN. When node01 dies (pulse and
mariadbd killed), node02 checks its replica, promotes it and takes the address; when
its replication was stopped by hand, it refuses and says why.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mariadb_lab import MariaDB, caught_up, prepare_primary, replicate

from pulse_lab.cluster import PulseNode, ha_cf, wait_for
from pulse_lab.netns import Node, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VIP = "198.51.100.100"
GROUP = "MySQLReplica::defaults_file=mysql.cnf::apply_timeout=5"
HARESOURCES = f"node01 {GROUP} {VIP}/24/eth0\n"
ADDRESSES = {"node01": "198.51.100.1", "node02": "198.51.100.2"}


@dataclass
class Site:
    node: Node
    db: MariaDB
    pulse: PulseNode


@pytest.fixture
def cluster(
    topology: Topology, mariadb_template: Path, tmp_path: Path
) -> Iterator[dict[str, Site]]:
    sockdir = Path(tempfile.mkdtemp(prefix="pmy"))
    sites: dict[str, Site] = {}
    try:
        lan = topology.add_lan("lan", "198.51.100.0/24")
        for server_id, (name, address) in enumerate(ADDRESSES.items(), 1):
            node = topology.add_node(name)
            topology.connect(node, lan, "eth0", f"{address}/24")
            db = MariaDB(
                name=f"db-{name}",
                template=mariadb_template,
                base=tmp_path,
                sockdir=sockdir,
                server_id=server_id,
                bind=address,
                port=3306,
                launch=lambda argv, node=node: topology.popen(  # type: ignore[misc]
                    node, argv, stdout=subprocess_devnull(), stderr=subprocess_devnull()
                ),
            )
            pulse = PulseNode(
                topology,
                node,
                tmp_path,
                name=name,
                ha_cf=ha_cf(["node01", "node02"], ["bcast eth0"]),
                haresources=HARESOURCES,
            )
            cnf = pulse.dir / "mysql.cnf"
            cnf.write_text(f"[client]\nuser = root\nsocket = {db.socket}\n")
            cnf.chmod(0o600)
            sites[name] = Site(node=node, db=db, pulse=pulse)
        primary, replica = sites["node01"].db, sites["node02"].db
        primary.start()
        replica.start()
        prepare_primary(primary, client_host=ADDRESSES["node02"])
        primary.query("INSERT INTO app.t VALUES (1, 'written on node01')")
        replica.query("SET GLOBAL read_only = ON")
        yield sites
    finally:
        for site in sites.values():
            site.pulse.stop()
            site.db.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


def subprocess_devnull() -> int:
    import subprocess

    return subprocess.DEVNULL


def start_pulse(sites: dict[str, Site]) -> tuple[PulseNode, PulseNode]:
    """Both daemons up with node01 holding the group, then node02's server made a replica.

    Replication is set up last because a node joining a running cluster may briefly
    take the group at start-up (a core race, reported), which would promote a replica.
    """
    node01, node02 = sites["node01"].pulse, sites["node02"].pulse
    node01.start()
    wait_for(lambda: running_on(node01, "node01"), 20, "node01 to hold the group")
    node02.start()
    wait_for(lambda: running_on(node02, "node01"), 20, "node02 to see node01 holding it")
    primary, replica = sites["node01"].db, sites["node02"].db
    replicate(replica, primary)
    caught_up(replica, primary)
    return node01, node02


def running_on(pulse: PulseNode, name: str) -> bool:
    """*pulse* sees the group held by *name* and fully started."""
    for group in pulse.status()["resources"]["groups"]:
        if group["key"] == GROUP:
            return bool(group["holder"] == name and group["state"] == "running")
    raise KeyError(GROUP)


def crash(site: Site) -> None:
    """The machine dies: pulse and mariadbd killed at once."""
    site.pulse.kill()
    site.db.stop(signal.SIGKILL)


def read_only(db: MariaDB) -> int:
    return int(db.query("SELECT @@global.read_only AS r")[0]["r"])


def test_node02_promotes_its_healthy_replica_when_node01_dies(cluster: dict[str, Site]) -> None:
    _, node02 = start_pulse(cluster)
    primary, replica = cluster["node01"].db, cluster["node02"].db
    assert read_only(primary) == 0 and read_only(replica) == 1
    primary.query("INSERT INTO app.t VALUES (2, 'just before the crash')")
    caught_up(replica, primary)

    crash(cluster["node01"])
    wait_for(lambda: running_on(node02, "node02"), 20, "node02 to take the group over")
    assert read_only(replica) == 0
    assert replica.status() is None  # replication stopped and reset
    replica.query("INSERT INTO app.t VALUES (3, 'written on node02')")
    assert [r["id"] for r in replica.query("SELECT id FROM app.t ORDER BY id")] == [1, 2, 3]
    # The log is written by a logging thread: wait for the lines rather than race it.
    node02.wait_log("replication allows taking over")
    node02.wait_log("promoted")
    node02.wait_log("replication stopped and reset, read_only OFF")


def test_node02_refuses_to_promote_a_replica_whose_replication_was_stopped(
    cluster: dict[str, Site],
) -> None:
    _, node02 = start_pulse(cluster)
    replica = cluster["node02"].db
    replica.query("STOP REPLICA IO_THREAD")
    replica.wait_status("Slave_IO_Running", "No")

    crash(cluster["node01"])
    wait_for(
        lambda: "was stopped (IO thread not running, no error)" in node02.log(),
        20,
        "node02 to refuse the takeover",
    )
    node02.wait_log(f"not acquiring {GROUP}: mysql: root@{replica.socket}: replication from")
    assert node02.holder(GROUP) != "node02"
    assert read_only(replica) == 1
    assert replica.status() is not None  # still a replica: nothing was changed
