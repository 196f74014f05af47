"""The MailTo agent and the hooks, through pulse's own plugin host and make_agent."""

from __future__ import annotations

import logging
from pathlib import Path

import pulse_mailto
import pytest
import trio
import trio.testing
from pulse_mailto.agent import MailToAgent, PseudoState, state_file_name
from pulse_mailto.compose import Mail
from pulse_mailto.delivery import MailStats, Outbox
from pulse_mailto.listener import MailListener
from pulse_mailto.settings import MailSettings, MailToTarget, RetryPolicy
from pulse_mailto.transport import MailError

from pulse.config.haresources import resource_spec
from pulse.config.model import (
    AuthKey,
    AuthKeys,
    AuthMethod,
    BcastMedium,
    Config,
    ResourceGroup,
    ResourceSpec,
    Source,
)
from pulse.plugin.api import ClusterEvent
from pulse.plugin.host import PluginHost
from pulse.resources import make_agent
from pulse.resources.agents import UnusableAgent


def spec(word: str) -> ResourceSpec:
    s, err = resource_spec(word, Source("/etc/ha.d/haresources", 3))
    assert s is not None, err
    return s


def config(words: list[str], table: dict[str, object] | None = None) -> Config:
    return Config(
        nodes=("prime", "calc"),
        media=(BcastMedium(interface="eth0"),),
        auth=AuthKeys(outbound=1, keys=(AuthKey(index=1, method=AuthMethod.CRC, key=None),)),
        groups=(ResourceGroup(node="prime", resources=tuple(spec(w) for w in words)),),
        plugins={"mailto": table} if table is not None else {},
        origin="/etc/ha.d",
    )


class Recording:
    name = "recording"

    def __init__(self, *, hang: bool = False, fail: bool = False) -> None:
        self.hang = hang
        self.fail = fail
        self.mails: list[Mail] = []

    async def send(self, m: Mail) -> None:
        if self.hang:
            await trio.sleep_forever()
        if self.fail:
            raise MailError("connection refused")
        self.mails.append(m)


def agent_with(
    tmp_path: Path, transport: Recording, word: str = "MailTo::a@x.example::Web"
) -> tuple[MailToAgent, Outbox]:
    stats = MailStats()
    box = Outbox(transport, policy=RetryPolicy(attempts=2, first_delay=1.0), stats=stats)
    s = spec(word)
    agent = MailToAgent(
        s,
        target=MailToTarget(recipients=("a@x.example",), subject="Web"),
        node="prime",
        sender="root@prime",
        outbox=box,
        state=PseudoState(tmp_path / state_file_name("prime", s)),
        script="/etc/ha.d/resource.d/MailTo",
        clock=lambda: 0.0,
    )
    return agent, box


async def test_start_and_stop_return_at_once_while_the_mail_server_hangs(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    agent, box = agent_with(tmp_path, Recording(hang=True))
    start = trio.current_time()
    assert not await agent.status()
    await agent.start()
    assert await agent.status()
    await agent.stop()
    assert not await agent.status()
    assert trio.current_time() == start
    assert box.pending == 2


async def test_mail_failure_never_fails_start_or_stop(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    agent, box = agent_with(tmp_path, Recording(fail=True))
    await agent.start()
    await agent.stop()
    await box.wait_idle()
    assert box.stats.failed == 2
    assert box.stats.retries == 2


async def test_start_mails_takeover_and_stop_mails_release(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    transport = Recording()
    agent, box = agent_with(tmp_path, transport)
    await agent.start()
    await agent.stop()
    await box.wait_idle()
    assert [m.kind for m in transport.mails] == ["takeover", "release"]
    assert "Web Takeover in progress at " in transport.mails[0].subject
    assert transport.mails[0].subject.endswith(" on prime")
    assert transport.mails[1].subject.endswith(" from prime")
    assert transport.mails[0].body.endswith(
        "Command line was:\n/etc/ha.d/resource.d/MailTo a@x.example Web start\n"
    )


async def test_state_file_records_the_holding_like_the_ocf_agent(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    agent, _ = agent_with(tmp_path, Recording(hang=True))
    path = agent.state.path
    assert path.parent == tmp_path and path.name.startswith("MailTo_prime_a@x.example_Web_")
    await agent.start()
    assert path.exists()
    # A restarted daemon (a new agent) sees it still holds the resource.
    again, _ = agent_with(tmp_path, Recording(hang=True))
    assert await again.status()
    await agent.stop()
    assert not path.exists()


async def test_unwritable_state_directory_is_a_warning_not_a_failure(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    agent, _ = agent_with(tmp_path, Recording(hang=True))
    agent.state.path = tmp_path / "file" / "state"
    with caplog.at_level(logging.WARNING):
        await agent.start()
    assert await agent.status()
    assert "cannot update state file" in caplog.text


async def test_start_logs_the_command_heartbeat_would_have_run(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    agent, _ = agent_with(tmp_path, Recording(hang=True))
    with caplog.at_level(logging.INFO, logger="pulse.plugin.host.mailto"):
        await agent.start()
    assert "Running /etc/ha.d/resource.d/MailTo a@x.example Web start" in caplog.messages


# --------------------------------------------------------------------------- the hooks


def host() -> PluginHost:
    return PluginHost(load_entrypoints=False, plugins={"mailto": pulse_mailto})


def test_mailto_words_resolve_to_the_plugins_agent(tmp_path: Path) -> None:
    cfg = config(["MailTo::a@x.example,b@y.example::Web"], {"state_dir": str(tmp_path)})
    registry = host().resource_agents(cfg, "prime")
    agent = make_agent(cfg.groups[0].resources[0], cfg, registry=registry)
    assert isinstance(agent, MailToAgent)
    assert agent.target.recipients == ("a@x.example", "b@y.example")
    assert agent.state.path.parent == tmp_path
    assert agent.script == "/etc/ha.d/resource.d/MailTo"


def test_a_bad_mailto_word_becomes_an_unusable_agent_not_an_exception() -> None:
    cfg = config(["MailTo"])
    registry = host().resource_agents(cfg, "prime")
    agent = make_agent(cfg.groups[0].resources[0], cfg, registry=registry)
    assert isinstance(agent, UnusableAgent)
    assert "needs at least one address" in agent.problem


def test_configure_reports_bad_words_with_their_haresources_line() -> None:
    diags = host().configure(config(["MailTo::a@x.example::S::x"]), "prime")
    assert [str(d).split(": ")[0] for d in diags] == ["/etc/ha.d/haresources:3"]


def test_no_listener_without_recipients_or_mailto_words() -> None:
    assert host().event_listeners(config(["apache2"]), "prime") == []


def test_listener_and_agents_share_one_set_of_counters() -> None:
    cfg = config(["MailTo::a@x.example"], {"to": ["ops@example.com"]})
    h = host()
    (listener,) = h.event_listeners(cfg, "prime")
    agent = make_agent(cfg.groups[0].resources[0], cfg, registry=h.resource_agents(cfg, "prime"))
    assert isinstance(listener, MailListener) and isinstance(agent, MailToAgent)
    assert agent.outbox.stats is listener.stats
    assert listener.statistics()["mail_sent"] == 0
    assert listener.statistics()["transport"] == "smtp://localhost:25"


def test_a_reload_changes_the_recipients_sender_and_server_of_what_is_running() -> None:
    cfg = config(["MailTo::a@x.example"], {"to": ["ops@example.com"]})
    h = host()
    (listener,) = h.event_listeners(cfg, "prime")
    agent = make_agent(cfg.groups[0].resources[0], cfg, registry=h.resource_agents(cfg, "prime"))
    assert isinstance(listener, MailListener) and isinstance(agent, MailToAgent)
    new = config(
        ["MailTo::a@x.example"],
        {"to": ["oncall@example.com"], "from": "ha@example.com", "host": "mx"},
    )
    h.rebind(new, "prime")
    assert h.configure(new, "prime") == []
    assert h.reconfigure(new, "prime") == {"mailto": True}
    assert listener.settings.to == ("oncall@example.com",)
    assert agent.sender == "ha@example.com"
    assert listener.statistics()["transport"] == "smtp://mx:25"
    assert agent.outbox is listener.outbox and agent.outbox.transport is listener.transport


def test_a_new_state_dir_waits_for_a_restart() -> None:
    cfg = config(["MailTo::a@x.example"], {"to": ["ops@example.com"]})
    h = host()
    h.event_listeners(cfg, "prime")
    new = config(["MailTo::a@x.example"], {"to": ["ops@example.com"], "state_dir": "/srv"})
    assert h.reconfigure(new, "prime") == {"mailto": False}


def test_two_daemons_with_one_config_have_a_mail_queue_each() -> None:
    # One process, two daemons (as in the virtual-time tests): each host is a daemon,
    # and the service lives in that daemon's plugin context, not in a module global.
    cfg = config(["MailTo::a@x.example"], {"to": ["ops@example.com"]})
    (one,) = host().event_listeners(cfg, "prime")
    (two,) = host().event_listeners(cfg, "prime")
    assert isinstance(one, MailListener) and isinstance(two, MailListener)
    assert one.outbox is not two.outbox and one.stats is not two.stats


async def test_listener_ignores_events_it_was_not_asked_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = Recording()
    listener = MailListener(
        MailSettings(to=("ops@example.com",), events=("node-dead",)), transport, MailStats()
    )
    await listener.handle(ClusterEvent(kind="node-up", node="calc", local="prime"))
    await listener.handle(ClusterEvent(kind="node-dead", node="calc", local="prime"))
    assert [m.kind for m in transport.mails] == ["node-dead"]


async def test_listener_raises_when_it_gives_up_so_the_bus_counts_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    settings = MailSettings(to=("ops@example.com",), retry=RetryPolicy(attempts=3))
    listener = MailListener(settings, Recording(fail=True), MailStats())
    assert listener.timeout > settings.retry.give_up_after + settings.timeout
    with pytest.raises(MailError, match="gave up"):
        await listener.handle(ClusterEvent(kind="node-dead", node="calc", local="prime"))
    assert listener.stats.failed == 1
