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
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from pulse_lab.cluster import PULSE, PulseNode, wait_for
from pulse_lab.netns import Node, Topology

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
        wait_for(lambda: os.path.exists(self.socket), 30, f"{self.name}'s control socket")


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
        # prime first, and calc only once prime holds the group: otherwise calc may take
        # it for the moment prime is still starting (and give it back: auto_failback).
        prime, calc = self.nodes["prime"], self.nodes["calc"]
        prime.start()
        wait_for(lambda: prime.holder(VIP) == "prime", 20, "prime to hold the group")
        calc.start()
        wait_for(lambda: calc.holder(VIP) == "prime", 20, "calc to see prime holding it")

    @staticmethod
    def _smtpd_listening(topology: Topology, mail: Node) -> Any:
        def check() -> bool:
            out = topology.run(mail, ["ss", "-Hltn", f"sport = :{MAIL_PORT}"], check=False)
            return MAIL_HOST in out.stdout

        return check

    def mails(self) -> dict[str, mailbox.MaildirMessage]:
        if not (self.maildir / "new").is_dir():
            return {}
        return dict(mailbox.Maildir(str(self.maildir), create=False).items())

    def wait_mail(
        self, *fragments: str, timeout: float, seen: Collection[str] = ()
    ) -> mailbox.MaildirMessage:
        """The first mail not in *seen* whose subject contains every fragment."""
        found: list[mailbox.MaildirMessage] = []

        def arrived() -> bool:
            found[:] = [
                m
                for key, m in self.mails().items()
                if key not in seen and all(f in str(m["Subject"]) for f in fragments)
            ]
            return bool(found)

        try:
            wait_for(arrived, timeout, f"a mail with {fragments}")
        except TimeoutError:
            subjects = [str(m["Subject"]) for m in self.mails().values()]
            logs = "\n".join(f"--- {n.name}\n{n.log()[-3000:]}" for n in self.nodes.values())
            raise AssertionError(f"no mail {fragments}; got {subjects}\n{logs}") from None
        return found[0]


def recipients(msg: mailbox.MaildirMessage) -> list[str]:
    return sorted(a.strip() for a in str(msg["X-RcptTo"]).split(","))


def test_crash_of_the_holder_mails_takeover_and_node_death_from_the_survivor(
    topology: Topology, tmp_path: Path
) -> None:
    c = Cluster(topology, tmp_path)
    prime, calc = c.nodes["prime"], c.nodes["calc"]
    first = c.wait_mail("WebCluster Takeover in progress at", " on prime", timeout=20)
    assert recipients(first) == ["dba@example.com", "ops@example.com"]
    assert str(first["From"]) == "pulse@prime.example.com"

    def sent_by_calc() -> int:
        mailto = calc.ctl("plugins").result["listeners"]["mailto"]
        return int(mailto["details"]["mail_sent"])

    before = set(c.mails())
    sent_before = sent_by_calc()
    prime.kill()  # SIGKILL: no release, so no mail from prime
    c.wait_mail("WebCluster Takeover in progress at", " on calc", timeout=15, seen=before)
    dead = c.wait_mail("web: node prime is dead", timeout=15, seen=before)
    assert recipients(dead) == ["oncall@example.com"]
    assert str(dead["X-Pulse-Node"]) == "calc"
    assert "Reported by: calc" in str(dead.get_payload())
    after = [m for key, m in c.mails().items() if key not in before]
    assert not any("from prime" in str(m["Subject"]) for m in after)
    wait_for(lambda: sent_by_calc() >= sent_before + 2, 5, "calc to count its two mails")


def test_graceful_stop_mails_the_release_before_the_daemon_exits(
    topology: Topology, tmp_path: Path
) -> None:
    c = Cluster(topology, tmp_path)
    prime = c.nodes["prime"]
    c.wait_mail("Takeover in progress at", " on prime", timeout=20)
    before = set(c.mails())
    assert prime.proc is not None
    os.killpg(prime.proc.pid, signal.SIGTERM)
    assert prime.proc.wait(timeout=20) == 0
    c.wait_mail("WebCluster Migrating resource away at", " from prime", timeout=5, seen=before)
    c.wait_mail("WebCluster Takeover in progress at", " on calc", timeout=15, seen=before)
