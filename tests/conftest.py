"""Shared fixtures: a database per test on every backend, settings, stores.

``database_url`` is parametrised over ``BACKENDS``: each test that uses it (directly,
through ``store``, or through ``make_settings``) runs once on SQLite and once on
PostgreSQL, on a fresh database each time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callgate.config import Settings
from callgate.store import Store, open_store
from callgate.testing import GUARDRAILS_OFF
from tests import pg

BACKENDS = ["sqlite", "postgres"]
#: tests that are not about the guardrails send to many numbers, many times, at any hour:
#: they run with the guardrails off (tests/integration/test_guardrails.py turns them on)
NO_GUARDRAILS = GUARDRAILS_OFF


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[pg.Databases]:
    pg.require()
    databases = pg.Databases()
    yield databases
    databases.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/gw.db"
        return
    databases: pg.Databases = request.getfixturevalue("pg_databases")
    url = databases.fresh()
    yield url
    databases.drop(url)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(database_url)
    yield s
    s.close()


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Any:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "database_url": database_url,
            "rate": 0,
            "simulator_log": tmp_path / "sim.log",
            "idle_poll": None,
            **NO_GUARDRAILS,
        }
        base.update(overrides)
        idle = base.pop("idle_poll")
        s = Settings(**base)
        # idle_poll None (wake-ups only) is only meaningful in tests on virtual time
        object.__setattr__(s, "idle_poll", idle if idle is not None else 3600.0)
        return s

    return make
