from __future__ import annotations

from pulse.testing.fixtures import topology_fixture

topology = topology_fixture("pet")
