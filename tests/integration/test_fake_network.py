"""pulse.testing.FakeNetwork's faults: whole-port cuts, one-way cuts, seeded loss."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from pulse.testing import FakeNetwork
from pulse.transport import Datagram


async def _heard(network: FakeNetwork, sends: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    """Run three nodes' eth0 links, send *sends* in order, return what each node got."""
    heard: dict[str, list[bytes]] = {}
    links = {name: network.link(name) for name in ("prime", "calc", "spare")}
    async with trio.open_nursery() as nursery:
        receivers: dict[str, trio.MemoryReceiveChannel[Datagram]] = {}
        for name, link in links.items():
            tx, rx = trio.open_memory_channel[Datagram](1000)
            receivers[name] = rx
            await nursery.start(link.run, tx)
        for name, data in sends:
            await links[name].send(data)
        for name, rx in receivers.items():
            heard[name] = []
            while True:
                try:
                    heard[name].append(rx.receive_nowait().data)
                except trio.WouldBlock:
                    break
        nursery.cancel_scope.cancel()
    return heard


async def test_a_one_way_cut_silences_one_direction_only() -> None:
    network = FakeNetwork()
    network.cut_one_way("prime", "calc")
    heard = await _heard(network, [("prime", b"p"), ("calc", b"c")])
    assert heard == {"prime": [b"c"], "calc": [], "spare": [b"p", b"c"]}
    network.restore_one_way("prime", "calc")
    heard = await _heard(network, [("prime", b"p")])
    assert heard["calc"] == [b"p"]


async def test_seeded_loss_drops_the_same_packets_on_every_run() -> None:
    sends = [("prime", bytes([i])) for i in range(200)]
    runs = []
    for _ in range(2):
        network = FakeNetwork(seed=7)
        network.set_loss(0.3, src="prime", dst="calc")
        runs.append(await _heard(network, sends))
    assert runs[0] == runs[1]
    assert 100 < len(runs[0]["calc"]) < 180  # about 70 % of 200 arrive
    assert len(runs[0]["spare"]) == 200  # only prime -> calc loses packets


async def test_heal_ends_every_cut_and_every_loss() -> None:
    network = FakeNetwork()
    network.cut("calc", "eth0")
    network.cut_one_way("prime", "spare")
    network.set_loss(1.0)
    network.heal()
    heard = await _heard(network, [("prime", b"p")])
    assert heard["calc"] == [b"p"] and heard["spare"] == [b"p"]


def test_a_loss_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FakeNetwork().set_loss(1.5)
