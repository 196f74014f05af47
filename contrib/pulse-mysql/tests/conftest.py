from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mariadb_lab import MariaDB, make_template, prepare_primary, replicate, unavailable

from pulse_lab.fixtures import topology_fixture


@pytest.fixture(scope="session")
def mariadb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised datadir per test session, copied for every server."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    return make_template(tmp_path_factory.mktemp("mariadb") / "template")


@pytest.fixture
def mariadb_pair(mariadb_template: Path, tmp_path: Path) -> Iterator[tuple[MariaDB, MariaDB]]:
    """A running primary and a GTID replica of it, both stopped at the end, whatever happens."""
    sockdir = Path(tempfile.mkdtemp(prefix="pmy"))  # unix socket paths must stay short
    servers: list[MariaDB] = []
    try:
        primary = MariaDB(
            name="primary", template=mariadb_template, base=tmp_path, sockdir=sockdir, server_id=1
        )
        servers.append(primary)
        replica = MariaDB(
            name="replica", template=mariadb_template, base=tmp_path, sockdir=sockdir, server_id=2
        )
        servers.append(replica)
        primary.start()
        replica.start()
        prepare_primary(primary)
        replicate(replica, primary)
        yield primary, replica
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


topology = topology_fixture("pmy")
