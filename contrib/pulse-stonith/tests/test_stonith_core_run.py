"""The core starts a fencing device's optional ``run()`` with the resource manager."""

from __future__ import annotations

import trio
import trio.testing

from pulse.config.model import AuthKey, AuthKeys, AuthMethod, Config
from pulse.failover.manager import ResourceManager


def _config() -> Config:
    key = AuthKey(index=1, method=AuthMethod.CRC, key=None)
    return Config(nodes=("prime", "calc"), media=(), auth=AuthKeys(outbound=1, keys=(key,)))


class Upkeep:
    name = "upkeep"
    timeout = 1.0

    def __init__(self, *, crash: bool = False) -> None:
        self.crash = crash
        self.rounds: list[float] = []

    def can_fence(self, node: str) -> bool:
        return True

    async def fence(self, node: str) -> None:
        return None

    async def run(self) -> None:
        while True:
            self.rounds.append(trio.current_time())
            if self.crash:
                raise RuntimeError("device went away")
            await trio.sleep(10)


class NoUpkeep:
    name = "plain"
    timeout = 1.0

    def can_fence(self, node: str) -> bool:
        return True

    async def fence(self, node: str) -> None:
        return None


async def test_resource_manager_runs_each_fencing_devices_run_until_it_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upkeep, broken = Upkeep(), Upkeep(crash=True)
    manager = ResourceManager(
        config=_config(),
        local="calc",
        agents={},
        send=lambda message: None,
        fencing=[upkeep, broken, NoUpkeep()],
    )
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        await trio.sleep(25)
        # A crashing run() is logged and does not take the resource manager down.
        assert [t - start for t in upkeep.rounds] == [0.0, 10.0, 20.0]
        assert [t - start for t in broken.rounds] == [0.0]
        assert await manager.command("bogus") == "unknown command bogus"
        nursery.cancel_scope.cancel()


class Flaky:
    name = "flaky"
    timeout = 1.0

    def __init__(self) -> None:
        self.failures = 1

    def can_fence(self, node: str) -> bool:
        return node == "prime"

    async def fence(self, node: str) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("PDU busy")


async def test_the_stonith_messages_sent_have_heartbeats_fields_bad_then_ok(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from pulse.protocol.events import NodeStatus, NodeStatusChanged
    from pulse.wire.message import Message

    sent: list[Message] = []
    manager = ResourceManager(
        config=_config(), local="calc", agents={}, send=sent.append, fencing=[Flaky()]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        alive = NodeStatusChanged(
            node="prime",
            old=NodeStatus.INIT,
            new=NodeStatus.ACTIVE,
            at=trio.current_time(),
            reason="up",
        )
        await manager.inbox.send(alive)  # the peer was seen alive, then dies
        dead = NodeStatusChanged(
            node="prime",
            old=NodeStatus.ACTIVE,
            new=NodeStatus.DEAD,
            at=trio.current_time(),
            reason="dead",
        )
        await manager.inbox.send(dead)
        await trio.sleep(6)  # one failure, then the 5 s retry succeeds
        nursery.cancel_scope.cancel()
    stonith = [[(f.name, f.value) for f in m.fields] for m in sent if m.get("t") == "stonith"]
    # As Heartbeat sends them: t=stonith, node, result (docs/heartbeat.md#message-catalogue).
    assert stonith == [
        [("t", b"stonith"), ("node", b"prime"), ("result", b"bad")],
        [("t", b"stonith"), ("node", b"prime"), ("result", b"OK")],
    ]
