"""pytest fixtures for pulse's and plugins' end-to-end tests (needs pytest installed).

In a ``conftest.py``::

    from pulse_lab.fixtures import topology_fixture

    topology = topology_fixture("pmy")   # namespaces named pmy<pid>-...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pulse_lab.netns import Topology, netns_available


def topology_fixture(name_prefix: str = "pt") -> Callable[[], Iterator[Topology]]:
    """A function-scoped ``topology`` fixture: a fresh :class:`Topology`, always closed
    (namespaces and processes removed even when the test fails); skips without root or
    network-namespace support."""

    @pytest.fixture
    def topology() -> Iterator[Topology]:
        reason = netns_available()
        if reason is not None:
            pytest.skip(reason)
        topo = Topology(name_prefix=name_prefix)
        try:
            yield topo
        finally:
            topo.close()

    return topology
