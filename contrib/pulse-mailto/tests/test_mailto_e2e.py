"""Two real pulse daemons in namespaces mail through a real SMTP server on their LAN.

The mail server is aiosmtpd's command line (``python -m aiosmtpd``, Maildir handler)
running in a third namespace at 198.51.100.10:2525; the daemons are configured in
TOML with ``[plugins.mailto]`` pointing at it, and load this plugin through its
installed entry point, as a production ``pulse run`` does.
"""

from __future__ import annotations

import mailbox
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pulse.lab.cluster import PULSE, PulseNode, wait_for
from pulse.lab.netns import Node, Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

MAIL_HOST = "198.51.100.10"
MAIL_PORT = 2525
VIP = "198.51.100.100"
WORD = "MailTo::ops@example.com,dba@example.com::WebCluster"


def toml(name: str, workdir: Path) -> str:
    return f"""\
[cluster]
nodes = ["prime", "calc"]
auto_failback = "on"

[timing]
keepalive = "200ms"
deadtime = "1s"
warntime = "600ms"
initdead = "2s"

[[links]]
type = "bcast"
interface = "eth0"

[auth]
use = 1

[[auth.keys]]
index = 1
method = "sha1"
key = "pulse-e2e-secret"

[[groups]]
node = "prime"
resources = ["{VIP}", "{WORD}"]

[plugins.mailto]
host = "{MAIL_HOST}"
port = {MAIL_PORT}
from = "pulse@{name}.example.com"
to = ["oncall@example.com"]
subject = "web"
timeout = "5s"
retry_delay = "200ms"
state_dir = "{workdir / name / "rsctmp"}"
"""


class TomlNode(PulseNode):
    """A PulseNode started from a pulse TOML file instead of Heartbeat's files."""

    def __init__(self, topology: Topology, node: Node, workdir: Path, *, name: str) -> None:
        super().__init__(topology, node, workdir, name=name, ha_cf="")
        self.toml = self.dir / "pulse.toml"
        self.toml.write_text(toml(name, workdir))
        os.chmod(self.toml, 0o600)

    def start(self) -> None:
        argv = [
            *PULSE, "run", "-c", str(self.toml), "--node", self.name,
            "--control-socket", self.socket, "--state-dir", str(self.dir / "state"),
        ]  # fmt: skip
        with open(self.logfile, "ab") as out:
            self.proc = self.topology.popen(self.node, argv, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.socket), 10, f"{self.name}'s control socket")


class Cluster:
    def __init__(self, topology: Topology, workdir: Path) -> None:
        lan = topology.add_lan("lan", "198.51.100.0/24")
        mail = topology.add_node("mail")
        topology.connect(mail, lan, "eth0", f"{MAIL_HOST}/24")
        self.maildir = workdir / "maildir"
        argv = [
            sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{MAIL_HOST}:{MAIL_PORT}",
            "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir),
        ]  # fmt: skip
        self.smtpd = topology.popen(
            mail, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.nodes: dict[str, TomlNode] = {}
        for i, name in enumerate(("prime", "calc"), start=1):
            node = topology.add_node(name)
            topology.connect(node, lan, "eth0", f"198.51.100.{i}/24")
            self.nodes[name] = TomlNode(topology, node, workdir, name=name)
        wait_for(self._smtpd_listening(topology, mail), 15, "aiosmtpd to listen")
        for n in self.nodes.values():
            n.start()

    @staticmethod
    def _smtpd_listening(topology: Topology, mail: Node) -> Any:
        def check() -> bool:
            out = topology.run(mail, ["ss", "-Hltn", f"sport = :{MAIL_PORT}"], check=False)
            return MAIL_HOST in out.stdout

        return check

    def mails(self) -> list[mailbox.MaildirMessage]:
        if not (self.maildir / "new").is_dir():
            return []
        return list(mailbox.Maildir(str(self.maildir), create=False))

    def wait_mail(self, fragment: str, timeout: float) -> mailbox.MaildirMessage:
        found: list[mailbox.MaildirMessage] = []

        def arrived() -> bool:
            found[:] = [m for m in self.mails() if fragment in str(m["Subject"])]
            return bool(found)

        try:
            wait_for(arrived, timeout, f"a mail with {fragment!r}")
        except TimeoutError:
            subjects = [str(m["Subject"]) for m in self.mails()]
            logs = "\n".join(f"--- {n.name}\n{n.log()[-3000:]}" for n in self.nodes.values())
            raise AssertionError(f"no mail {fragment!r}; got {subjects}\n{logs}") from None
        return found[0]


def recipients(msg: mailbox.MaildirMessage) -> list[str]:
    return sorted(a.strip() for a in str(msg["X-RcptTo"]).split(","))


def test_crash_of_the_holder_mails_takeover_and_node_death_from_the_survivor(
    topology: Topology, tmp_path: Path
) -> None:
    c = Cluster(topology, tmp_path)
    prime, calc = c.nodes["prime"], c.nodes["calc"]
    first = c.wait_mail("WebCluster Takeover in progress at", 20)
    assert str(first["Subject"]).endswith(" on prime")
    assert recipients(first) == ["dba@example.com", "ops@example.com"]
    assert str(first["From"]) == "pulse@prime.example.com"
    wait_for(lambda: calc.holder(VIP) == "prime", 10, "calc to see prime holding the group")

    prime.kill()  # SIGKILL: no release, no mail from prime
    c.wait_mail("on calc", 15)
    dead = c.wait_mail("web: node prime is dead", 15)
    assert recipients(dead) == ["oncall@example.com"]
    assert str(dead["X-Pulse-Node"]) == "calc"
    assert "Reported by: calc" in str(dead.get_payload())
    assert not any("Migrating resource away" in str(m["Subject"]) for m in c.mails())

    reply = calc.ctl("plugins")
    details = reply.result["listeners"]["mailto"]["details"]
    assert details["mail_sent"] >= 2 and details["mail_failed"] == 0


def test_graceful_stop_mails_the_release_before_the_daemon_exits(
    topology: Topology, tmp_path: Path
) -> None:
    c = Cluster(topology, tmp_path)
    prime = c.nodes["prime"]
    c.wait_mail("Takeover in progress at", 20)
    assert prime.proc is not None
    os.killpg(prime.proc.pid, signal.SIGTERM)
    assert prime.proc.wait(timeout=20) == 0
    release = c.wait_mail("WebCluster Migrating resource away at", 5)
    assert str(release["Subject"]).endswith(" from prime")
    c.wait_mail(" on calc", 15)
