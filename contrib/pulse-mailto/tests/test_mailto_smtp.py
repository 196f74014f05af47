"""Real mail: aiosmtpd on loopback (plain, STARTTLS with login), and a sendmail stand-in."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulse_mailto
import pytest
import trio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from mailto_smtp_support import Collector, SmtpServer, free_port
from pulse_mailto.agent import MailToAgent
from pulse_mailto.listener import MailListener

from pulse.config.haresources import resource_spec
from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    ResourceGroup,
    Source,
)
from pulse.plugin.api import ClusterEvent
from pulse.plugin.host import PluginHost
from pulse.resources import make_agent

WORD = "MailTo::a@x.example,b@y.example::JuliusCaesar"


def cluster(table: dict[str, object], word: str = WORD) -> Config:
    spec, _ = resource_spec(word, Source("/etc/ha.d/haresources", 1))
    assert spec is not None
    return Config(
        nodes=("julius", "caesar"),
        media=(BcastMedium(interface="eth0"),),
        auth=AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),)),
        groups=(ResourceGroup(node="julius", resources=(spec,)),),
        plugins={"mailto": table},
        origin="/etc/ha.d",
    )


def agent_and_listener(cfg: Config) -> tuple[MailToAgent, MailListener]:
    host = PluginHost(load_entrypoints=False, plugins={"mailto": pulse_mailto})
    assert [d for d in host.configure(cfg, "julius") if d.severity == "error"] == []
    agent = make_agent(
        cfg.groups[0].resources[0], cfg, registry=host.resource_agents(cfg, "julius")
    )
    (listener,) = host.event_listeners(cfg, "julius")
    assert isinstance(agent, MailToAgent) and isinstance(listener, MailListener)
    return agent, listener


def fast_retries(**table: object) -> dict[str, object]:
    return {"retry_delay": "50ms", "max_retry_delay": "100ms", "timeout": 5, **table}


async def test_takeover_and_release_mails_arrive_with_heartbeats_subjects(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    cfg = cluster(
        fast_retries(host=smtp_server.host, port=smtp_server.port, state_dir=str(tmp_path))
    )
    agent, listener = agent_and_listener(cfg)
    await agent.start()
    assert await agent.status()
    await agent.stop()
    await agent.outbox.wait_idle()
    mails = smtp_server.collector.mails
    assert [m.recipients for m in mails] == [["a@x.example", "b@y.example"]] * 2
    assert mails[0].subject.startswith("JuliusCaesar Takeover in progress at ")
    assert mails[0].subject.endswith(" on julius")
    assert mails[1].subject.startswith("JuliusCaesar Migrating resource away at ")
    assert mails[1].subject.endswith(" from julius")
    assert mails[0].sender.startswith("root@")
    assert listener.statistics()["mail_sent"] == 2


async def test_heartbeat_default_subject_when_the_word_has_none(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    cfg = cluster(
        fast_retries(host=smtp_server.host, port=smtp_server.port, state_dir=str(tmp_path)),
        word="MailTo::alerts@example.org",
    )
    agent, _ = agent_and_listener(cfg)
    await agent.start()
    await agent.outbox.wait_idle()
    (mail,) = smtp_server.collector.mails
    assert mail.subject.startswith("Resource Group Takeover in progress at ")
    assert mail.recipients == ["alerts@example.org"]


async def test_node_death_mails_the_configured_recipients(smtp_server: SmtpServer) -> None:
    cfg = cluster(
        fast_retries(
            host=smtp_server.host,
            port=smtp_server.port,
            to=["oncall@example.com"],
            subject="julius-caesar",
            **{"from": "pulse@example.com"},
        )
    )
    _, listener = agent_and_listener(cfg)
    await listener.handle(ClusterEvent(kind="node-dead", node="caesar", local="julius"))
    (mail,) = smtp_server.collector.mails
    assert mail.subject == "julius-caesar: node caesar is dead"
    assert mail.recipients == ["oncall@example.com"]
    assert mail.sender == "pulse@example.com"
    assert "Reported by: julius" in mail.message.get_payload()


async def test_smtp_down_retries_then_gives_up_while_start_and_stop_return_at_once(
    tmp_path: Path,
) -> None:
    cfg = cluster(
        fast_retries(host="127.0.0.1", port=free_port(), attempts=3, state_dir=str(tmp_path))
    )
    agent, listener = agent_and_listener(cfg)
    began = trio.current_time()
    await agent.start()
    await agent.stop()
    assert trio.current_time() - began < 0.2
    with trio.fail_after(10):
        await agent.outbox.wait_idle()
    stats = listener.statistics()
    assert (stats["mail_sent"], stats["mail_retries"], stats["mail_failed"]) == (0, 4, 2)
    assert "Connection refused" in str(stats["mail_last_error"])


async def test_a_refused_recipient_is_a_permanent_failure_not_retried(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.collector.refuse.add("oncall@example.com")
    cfg = cluster(
        fast_retries(host=smtp_server.host, port=smtp_server.port, to=["oncall@example.com"])
    )
    _, listener = agent_and_listener(cfg)
    with pytest.raises(Exception, match="550"):
        await listener.handle(ClusterEvent(kind="fenced", node="caesar", local="julius"))
    assert listener.stats.retries == 0 and listener.stats.failed == 1


# --------------------------------------------------------------------------- STARTTLS + login


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[SmtpServer, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        good = (b"pulse", b"s3cret")
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == good
        return AuthResult(success=ok, handled=False)  # handled=False: the server says 535

    collector = Collector()
    port = free_port()
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, collector), cert
    finally:
        controller.stop()


async def test_starttls_and_login_with_a_password_file(
    tls_server: tuple[SmtpServer, Path], tmp_path: Path
) -> None:
    server, cert = tls_server
    secret = tmp_path / "mail.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    cfg = cluster(
        fast_retries(
            host=server.host, port=server.port, starttls=True, cafile=str(cert),
            username="pulse", password_file=str(secret), to=["oncall@example.com"],
        )
    )  # fmt: skip
    _, listener = agent_and_listener(cfg)
    await listener.handle(ClusterEvent(kind="node-dead", node="caesar", local="julius"))
    assert [m.subject for m in server.collector.mails] == ["linux-ha: node caesar is dead"]


async def test_a_wrong_password_is_a_permanent_failure(
    tls_server: tuple[SmtpServer, Path],
) -> None:
    server, cert = tls_server
    cfg = cluster(
        fast_retries(
            host=server.host, port=server.port, starttls=True, cafile=str(cert),
            username="pulse", password="wrong", to=["oncall@example.com"],
        )
    )  # fmt: skip
    _, listener = agent_and_listener(cfg)
    with pytest.raises(Exception, match="login as pulse refused"):
        await listener.handle(ClusterEvent(kind="node-dead", node="caesar", local="julius"))
    assert listener.stats.retries == 0


async def test_an_untrusted_certificate_is_reported_with_the_fix(
    tls_server: tuple[SmtpServer, Path],
) -> None:
    server, _ = tls_server
    cfg = cluster(
        fast_retries(host=server.host, port=server.port, starttls=True, to=["o@example.com"])
    )
    _, listener = agent_and_listener(cfg)
    with pytest.raises(Exception, match="set cafile"):
        await listener.handle(ClusterEvent(kind="node-dead", node="caesar", local="julius"))


# --------------------------------------------------------------------------- sendmail -t


SENDMAIL = """#!/bin/sh
# sendmail stand-in: keep the arguments and the message.
echo "$@" > "{dir}/argv"
cat > "{dir}/message"
exit {rc}
"""


def fake_sendmail(tmp_path: Path, rc: int = 0) -> Path:
    script = tmp_path / "sendmail"
    script.write_text(SENDMAIL.format(dir=tmp_path, rc=rc))
    script.chmod(0o755)
    return script


async def test_sendmail_transport_pipes_the_message_to_sendmail_t(tmp_path: Path) -> None:
    cfg = cluster(
        fast_retries(
            transport="sendmail", sendmail=str(fake_sendmail(tmp_path)), state_dir=str(tmp_path),
            **{"from": "pulse@example.com"},
        )
    )  # fmt: skip
    agent, _ = agent_and_listener(cfg)
    await agent.start()
    await agent.outbox.wait_idle()
    assert (tmp_path / "argv").read_text().split() == ["-t", "-oi", "-f", "pulse@example.com"]
    text = (tmp_path / "message").read_text()
    assert "To: a@x.example, b@y.example\n" in text
    assert "Subject: JuliusCaesar Takeover in progress at " in text


async def test_sendmail_usage_error_is_permanent(tmp_path: Path) -> None:
    cfg = cluster(
        fast_retries(
            transport="sendmail", sendmail=str(fake_sendmail(tmp_path, rc=64)),
            to=["o@example.com"],
        )
    )  # fmt: skip
    _, listener = agent_and_listener(cfg)
    with pytest.raises(Exception, match="exit status 64"):
        await listener.handle(ClusterEvent(kind="node-dead", node="caesar", local="julius"))
    assert listener.stats.retries == 0
