"""A PostgreSQL server of the test's own, to stop and start at will (an outage), made
with ``initdb`` in a temporary directory on a free port and removed afterwards.

The shared server is never stopped: other tests (and other sessions) use it. Run as
root, the server's commands run as the ``postgres`` user (``runuser``), since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os

import pytest

from callgate.testing import PgCluster, pg_bindir


class Cluster(PgCluster):
    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("initdb is not installed (Debian: postgresql)")
            pytest.skip("initdb is not installed: no PostgreSQL server of our own")
        super().__init__(bindir, max_connections=60)

    def url(self, database: str = "callgate") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
