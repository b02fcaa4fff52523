"""Acceptance tests drive the real ``callgate`` command in subprocesses.

Each test gets its own database and simulator log under ``tmp_path`` and runs every
command with ``cwd=tmp_path`` and a clean ``CALLGATE_*`` environment, so nothing from
the developer's shell or a stray ``callgate.toml`` leaks in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callgate.testing import GUARDRAILS_OFF_ENV

from .support import Callgate


@pytest.fixture
def cg(tmp_path: Path) -> Iterator[Callgate]:
    gate = Callgate(tmp_path)
    gate.env = {
        "CALLGATE_DATABASE_URL": f"sqlite:///{gate.db}",
        "CALLGATE_SIMULATOR_LOG": str(gate.log),
        "CALLGATE_RATE": "0",
        "CALLGATE_IDLE_POLL": "0.05",
        "CALLGATE_SWEEP_INTERVAL": "0.2",
        "CALLGATE_POLL_INITIAL": "0.05",
        **GUARDRAILS_OFF_ENV,  # not about the guardrails (tests/acceptance/test_cli.py is)
    }
    yield gate
    gate.cleanup()
