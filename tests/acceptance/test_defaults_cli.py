"""The real ``callgate`` against ``callgate simulator`` over HTTP, on the product's own
defaults: wrong Twilio credentials, then the right ones after a restart.

Nothing turns a guardrail off; the numbers are where it is daytime now (the default quiet
hours are on) and the allowlist is their pattern, as a new user would set it."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from callgate.testing import daytime_numbers

from .providers_support import SIM, SimProcess, vendor_env
from .support import CALLGATE, query


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    (tmp_path / "sim").mkdir()
    process = SimProcess.start(tmp_path / "sim", env={"PATH": "/usr/bin:/bin"})
    yield process
    assert process.stop() == 0, process.stderr.text


def callgate(
    tmp_path: Path, env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*CALLGATE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def twilio(tmp_path: Path, env: dict[str, str]) -> dict[str, object]:
    shown = json.loads(callgate(tmp_path, env, "providers", "--json").stdout)
    by_name = {p["name"]: p for p in shown}
    assert by_name["simulator"]["kinds"] == ["call", "fax", "request"]
    found: dict[str, object] = by_name["twilio"]
    assert found["kinds"] == ["sms"]
    return found


def test_wrong_credentials_then_the_right_ones_deliver_every_job(
    tmp_path: Path, sim: SimProcess
) -> None:
    numbers, pattern = daytime_numbers(20, time.time())
    db = tmp_path / "callgate.db"
    env = vendor_env(sim, {"sms": "twilio"}) | {
        "PATH": "/usr/bin:/bin",
        "CALLGATE_DATABASE_URL": f"sqlite:///{db}",
        "CALLGATE_ALLOWLIST": pattern,
        "CALLGATE_POLL_INITIAL": "0.05",  # how soon a sent SMS's status is asked
    }
    wrong = env | {"CALLGATE_TWILIO_AUTH_TOKEN": "not-the-token"}
    rows = "".join(f"{n},reminder {i}\n" for i, n in enumerate(numbers))
    (tmp_path / "reminders.csv").write_text("To,Body\n" + rows)
    callgate(tmp_path, wrong, "batch", "submit", "reminders.csv", "--kind", "sms", "--detach")

    said = callgate(tmp_path, wrong, "worker", "--drain").stderr  # ends: every job waits
    assert "provider.down: twilio" in said
    refused = query(db, "SELECT count(*) FROM audit_log WHERE status = 401")[0][0]
    assert 1 <= refused <= 5  # a handful reached Twilio while the token was wrong
    down = twilio(tmp_path, wrong)
    assert (down["state"], down["fault"], down["waiting"]) == ("open", "auth", 20)
    statuses = query(db, "SELECT status, reason, attempts, count(*) FROM jobs GROUP BY 1, 2, 3")
    assert statuses == [("held", "provider_unavailable", 0, 20)]  # no job used an attempt

    right = env | {"CALLGATE_TWILIO_AUTH_TOKEN": SIM["twilio_auth_token"]}
    callgate(tmp_path, right, "worker", "--drain")  # probes at once, then sends them all
    statuses = query(db, "SELECT status, attempts, count(*) FROM jobs GROUP BY 1, 2")
    assert statuses == [("delivered", 1, 20)]
    assert query(db, "SELECT count(*) FROM audit_log WHERE status = 401")[0][0] == refused
    up = twilio(tmp_path, right)
    assert (up["state"], up["waiting"]) == ("closed", 0)
    kinds = [r[0] for r in query(db, "SELECT type FROM system_webhooks ORDER BY id")]
    assert kinds == ["provider.down", "provider.up", "batch.completed"]
