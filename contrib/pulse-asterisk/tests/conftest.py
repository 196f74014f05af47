from __future__ import annotations

from pulse_lab.fixtures import topology_fixture

topology = topology_fixture("pas")
