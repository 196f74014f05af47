from __future__ import annotations

from collections.abc import Iterator

import pytest

from pulse.lab.netns import Topology, netns_available


@pytest.fixture
def topology() -> Iterator[Topology]:
    """A fresh lab topology (namespaces), always closed; skips without root/netns."""
    reason = netns_available()
    if reason is not None:
        pytest.skip(reason)
    topo = Topology(name_prefix="pas")
    try:
        yield topo
    finally:
        topo.close()
