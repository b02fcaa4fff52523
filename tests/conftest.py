"""Shared fixtures: stores per backend, settings, a gateway on virtual time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callgate.config import Settings
from callgate.store.sqlite import SQLiteStore

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "callgate.db"))
    yield s
    s.close()


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path}/gw.db",
            "rate": 0,
            "simulator_log": tmp_path / "sim.log",
            "idle_poll": None,
        }
        base.update(overrides)
        idle = base.pop("idle_poll")
        s = Settings(**base)
        # idle_poll None (wake-ups only) is only meaningful in tests on virtual time
        object.__setattr__(s, "idle_poll", idle if idle is not None else 3600.0)
        return s

    return make
