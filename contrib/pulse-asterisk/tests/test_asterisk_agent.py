"""The AsteriskBindaddr agent with a fake ``asterisk`` that records its argv.

The fake answers ``-rx "sip show settings"`` from the sip.conf on disk, so the check
sees what a reloaded Asterisk would; its behaviour for reloads is set per test.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from pulse_asterisk import AsteriskBindaddr
from pulse_asterisk.settings import AsteriskSettings

from pulse.config.model import AuthKey, AuthKeys, AuthMethod, Config, ResourceSpec
from pulse.resources import ResourceError, acquire_group, make_agent, release_group

VIP = "198.51.100.100"
DATA = Path(__file__).parent / "data"
SEP = "\x1f"

FAKE = """\
#!/bin/sh
# A stand-in for `asterisk -rx COMMAND`: logs argv, behaves as ./mode says.
log="{log}"
printf '%s' "$0" >> "$log"
for a in "$@"; do printf '\\037%s' "$a" >> "$log"; done
printf '\\n' >> "$log"
mode=$(cat "{dir}/mode" 2>/dev/null || echo ok)
case "$2" in
  "sip show settings")
    n=$(($(cat "{dir}/checks" 2>/dev/null || echo 0) + 1)); echo $n > "{dir}/checks"
    if [ "$n" -lt "$(cat "{dir}/ready_after" 2>/dev/null || echo 1)" ]; then
      echo "  UDP Bindaddress:        0.0.0.0:5060"; exit 0
    fi
    addr=$(sed -n "s/^bindaddr = \\([^ ;]*\\).*/\\1/p" "{confdir}/sip.conf" | head -n 1)
    echo "  UDP Bindaddress:        $addr:5060"; exit 0 ;;
esac
case "$mode" in
  ok) echo "Asterisk reloaded"; exit 0 ;;
  fail) echo "Module 'chan_sip.so' failed to reload" >&2; exit 1 ;;
  down) echo "Unable to connect to remote asterisk (does /var/run/asterisk/asterisk.ctl exist?)";
        exit 0 ;;
  hang) exec sleep 30 ;;
esac
"""


class Fake:
    def __init__(self, tmp_path: Path, confdir: Path) -> None:
        self.dir = tmp_path / "fake"
        self.dir.mkdir()
        self.log = self.dir / "argv.log"
        self.path = self.dir / "asterisk"
        self.path.write_text(
            FAKE.format(log=self.log, dir=self.dir, confdir=confdir), encoding="utf-8"
        )
        self.path.chmod(0o755)

    def mode(self, mode: str) -> None:
        (self.dir / "mode").write_text(mode)

    def ready_after(self, n: int) -> None:
        (self.dir / "ready_after").write_text(str(n))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split(SEP) for line in self.log.read_text().splitlines()]


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    target = tmp_path / "asterisk"
    shutil.copytree(DATA / "asterisk", target)
    return target


@pytest.fixture
def fake(tmp_path: Path, confdir: Path) -> Fake:
    return Fake(tmp_path, confdir)


def minimal_config() -> Config:
    key = AuthKey(index=1, method=AuthMethod.CRC, key=None)
    return Config(nodes=("prime",), media=(), auth=AuthKeys(outbound=1, keys=(key,)))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def agent(confdir: Path, fake: Fake, **kw: object) -> AsteriskBindaddr:
    settings = AsteriskSettings(
        confdir=str(confdir),
        reload_command=(str(fake.path), "-rx", "core reload"),
        check_interval=0.01,
        **kw,  # type: ignore[arg-type]
    )
    spec = ResourceSpec(raw=f"AsteriskBindaddr::{VIP}", agent="AsteriskBindaddr", args=(VIP,))
    return AsteriskBindaddr(spec, vip=VIP, settings=settings, kill_grace=0.2)


async def test_start_rewrites_then_reloads_with_the_exact_argv_and_stop_undoes_it(
    confdir: Path, fake: Fake
) -> None:
    a = agent(confdir, fake)
    before = snapshot(confdir)
    assert not await a.status()
    await a.start()
    assert await a.status()
    assert "bindaddr = 198.51.100.100" in (confdir / "sip.conf").read_text()
    assert fake.calls() == [[str(fake.path), "-rx", "core reload"]]
    await a.stop()
    assert snapshot(confdir) == before
    assert not await a.status()
    assert fake.calls() == [[str(fake.path), "-rx", "core reload"]] * 2


async def test_stop_with_nothing_to_restore_does_not_reload(confdir: Path, fake: Fake) -> None:
    await agent(confdir, fake).stop()
    assert fake.calls() == []


async def test_the_check_is_polled_until_asterisk_shows_the_address(
    confdir: Path, fake: Fake
) -> None:
    fake.ready_after(3)
    check = (str(fake.path), "-rx", "sip show settings")
    a = agent(confdir, fake, check_command=check, check_timeout=20.0)
    await a.start()
    assert fake.calls() == [[str(fake.path), "-rx", "core reload"], *[list(check)] * 3]


async def test_a_check_that_never_shows_the_address_fails_the_start(
    confdir: Path, fake: Fake
) -> None:
    check = (str(fake.path), "-rx", "sip show settings")
    a = agent(confdir, fake, check_command=check, check_expect="203.0.113.9", check_timeout=0.3)
    with pytest.raises(ResourceError, match=r"did not confirm 203\.0\.113\.9 within 0\.3 s"):
        await a.start()


async def test_a_failed_reload_fails_the_start_with_asterisks_words(
    confdir: Path, fake: Fake
) -> None:
    fake.mode("fail")
    with pytest.raises(ResourceError) as info:
        await agent(confdir, fake).start()
    assert "exit status 1" in info.value.reason
    assert "chan_sip.so' failed to reload" in info.value.reason
    assert info.value.resource == f"AsteriskBindaddr::{VIP}"


async def test_asterisk_not_running_is_a_failed_reload_even_with_exit_status_0(
    confdir: Path, fake: Fake
) -> None:
    fake.mode("down")
    with pytest.raises(ResourceError, match="Asterisk is not running"):
        await agent(confdir, fake).start()


async def test_reload_required_off_lets_the_start_pass_with_a_warning(
    confdir: Path, fake: Fake, caplog: pytest.LogCaptureFixture
) -> None:
    fake.mode("down")
    a = agent(confdir, fake, reload_required=False)
    with caplog.at_level(logging.WARNING, logger="pulse.asterisk"):
        await a.start()
    assert await a.status()
    assert "reload_required is off" in caplog.text


async def test_a_missing_asterisk_binary_is_named_in_the_reason(confdir: Path) -> None:
    settings = AsteriskSettings(
        confdir=str(confdir), reload_command=("/nonexistent/sbin/asterisk", "-rx", "core reload")
    )
    spec = ResourceSpec(raw=f"AsteriskBindaddr::{VIP}", agent="AsteriskBindaddr", args=(VIP,))
    with pytest.raises(ResourceError, match="is Asterisk installed here"):
        await AsteriskBindaddr(spec, vip=VIP, settings=settings).start()


async def test_a_hung_reload_is_killed_after_its_timeout(confdir: Path, fake: Fake) -> None:
    fake.mode("hang")
    with pytest.raises(ResourceError, match=r"timed out after 0\.3 s"):
        await agent(confdir, fake, timeout=0.3).start()


async def test_a_failed_reload_on_stop_is_only_a_warning(
    confdir: Path, fake: Fake, caplog: pytest.LogCaptureFixture
) -> None:
    before = snapshot(confdir)
    a = agent(confdir, fake)
    await a.start()
    fake.mode("down")
    with caplog.at_level(logging.WARNING, logger="pulse.asterisk"):
        await a.stop()
    assert snapshot(confdir) == before
    assert "reads the restored files when it starts" in caplog.text


async def test_a_group_that_gives_up_after_the_rewrite_restores_the_files(
    confdir: Path, fake: Fake
) -> None:
    before = snapshot(confdir)
    fake.mode("ok")
    failing = agent(confdir, fake, files=("nosuch.conf",), files_explicit=True)
    group = [agent(confdir, fake), failing]
    result = await acquire_group(group, log=logging.getLogger("test"), node="prime")
    assert not result.ok
    assert snapshot(confdir) == before
    result = await release_group(group, log=logging.getLogger("test"), node="prime")
    assert result.ok


async def test_make_agent_resolves_the_word_through_the_plugin_registry(confdir: Path) -> None:
    import pulse_asterisk

    config = minimal_config()
    registry = pulse_asterisk.pulse_register_resource_agents()
    word = f"AsteriskBindaddr::{VIP}/24/eth0::{confdir}::reload_required=no"
    spec = ResourceSpec(raw=word, agent="AsteriskBindaddr", args=tuple(word.split("::")[1:]))
    made = make_agent(spec, config, registry=registry)
    assert isinstance(made, AsteriskBindaddr)
    assert made.vip == VIP
    assert made.settings.confdir == str(confdir)
    assert made.settings.reload_required is False


async def test_a_word_without_an_address_gives_an_agent_whose_start_says_why() -> None:
    import pulse_asterisk

    config = minimal_config()
    spec = ResourceSpec(raw="AsteriskBindaddr", agent="AsteriskBindaddr")
    made = make_agent(spec, config, registry=pulse_asterisk.pulse_register_resource_agents())
    assert not await made.status()
    with pytest.raises(ResourceError, match="needs the floating IP address"):
        await made.start()
