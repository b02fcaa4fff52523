"""The whole gateway against the vendors' APIs, end to end: ``callgate serve`` and
``callgate simulator`` in subprocesses, jobs of every kind submitted over HTTP, sent
through the Twilio, SignalWire and Telnyx adapters (their official SDKs), finished by the
simulator's signed status callbacks to serve, and reported by signed webhooks.

Status polling is set an hour away, so only the callbacks can finish the jobs in time:
each test also shows that the next fax to a line starts within a second of the last
one's final callback.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from callgate.testing import GUARDRAILS_OFF_ENV, ServeProcess, free_port
from callgate.webhooks.signing import generate_secret

from .providers_support import Receiver, SimProcess, vendor_env
from .support import wait_for

pytestmark = pytest.mark.slow

PDF = "https://example.org/ballot.pdf"
LINE = "+12125550170"  # a fax line: three faxes in a row


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    home = tmp_path / "sim"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    process = SimProcess.start(home, "--callback-delay", "0.05", "--fax-duration", "0.5", env=env)
    yield process
    assert process.stop() == 0, process.stderr.text


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def wait_for_events(hooks: Receiver, n: int, timeout: float = 60.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    with hooks.changed:
        while len(hooks.posts) < n:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(hooks.posts)} of {n} webhooks came"
            hooks.changed.wait(left)
        return list(hooks.posts)


ROUTES = {
    "twilio+telnyx": {"sms": "twilio", "call": "twilio", "request": "twilio", "fax": "telnyx"},
    "signalwire": {"sms": "signalwire", "call": "signalwire", "fax": "signalwire"},
}


@pytest.mark.parametrize("routes", list(ROUTES), ids=list(ROUTES))
def test_every_kind_through_the_vendors_with_callbacks_and_webhooks(
    tmp_path: Path, sim: SimProcess, hooks: Receiver, routes: str
) -> None:
    port = free_port()
    secret = generate_secret()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    env |= vendor_env(sim, ROUTES[routes])
    env |= GUARDRAILS_OFF_ENV  # not about the guardrails (tests/integration/test_guardrails.py)
    env |= {
        "CALLGATE_DATABASE_URL": f"sqlite:///{tmp_path}/gw.db",
        "CALLGATE_RATE": "0",
        "CALLGATE_IDLE_POLL": "0.05",
        "CALLGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CALLGATE_POLL_INITIAL": "3600",  # only the callbacks can end the jobs in time
        "CALLGATE_POLL_MAX": "3600",
        "CALLGATE_WEBHOOK_URL": f"{hooks.url}/hooks",
        "CALLGATE_WEBHOOK_SECRETS": secret,
    }
    jobs: list[tuple[str, dict[str, Any]]] = [
        ("messages", {"to": "+12125550171", "body": "Your ballot request arrived"}),
        ("calls", {"to": "+12125550172", "twiml": "<Response><Say>Hi</Say></Response>"}),
        *[("faxes", {"to": LINE, "media_url": PDF}) for _ in range(3)],
    ]
    if "request" in ROUTES[routes]:
        jobs.append(("requests", {"api": "lookup", "method": "GET", "to": "+12125550173"}))
    with ServeProcess.start(cwd=tmp_path, env=env, port=port) as server:
        auth = {"Authorization": f"Bearer {server.key}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as client:
            ids = []
            for path, body in jobs:
                r = client.post(f"/v1/{path}", json=body)
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            posts = wait_for_events(hooks, len(jobs))
            final = {i: client.get(f"/v1/jobs/{i}").json() for i in ids}
        assert server.stop() == 0
    assert "Traceback" not in server.stderr.text, server.stderr.text
    assert "refused" not in server.stderr.text  # every callback's signature held
    assert {j["status"] for j in final.values()} == {"delivered"}, final
    events = [Webhook(secret).verify(p.body, p.headers) for p in posts]
    assert sorted(e["data"]["id"] for e in events) == sorted(ids)
    assert {e["type"] for e in events} == {"job.delivered"}
    calls = sim.log_lines()
    assert len(calls) == len(jobs)  # each job sent once
    faxes = sorted((c for c in calls if c["to"] == LINE), key=lambda c: c["started_at"])
    assert len(faxes) == 3
    gaps = [b["started_at"] - a["ended_at"] for a, b in itertools.pairwise(faxes)]
    # one fax at a time on the line, and the next starts < 1 s after the last ends
    assert all(0 <= gap < 1.0 for gap in gaps), gaps


def test_a_fax_in_doubt_after_a_crash_is_reconciled_through_the_vendor(
    tmp_path: Path, sim: SimProcess, hooks: Receiver
) -> None:
    """serve is SIGKILLed while a Telnyx fax is on the line (accepted, not yet ended);
    the restarted serve finds the job in doubt, asks Telnyx about the fax by its id
    (through the SDK) and adopts the answer: delivered, and never faxed twice."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    env |= vendor_env(sim, {"fax": "telnyx"})
    env |= GUARDRAILS_OFF_ENV  # not about the guardrails (tests/integration/test_guardrails.py)
    env |= {
        "CALLGATE_DATABASE_URL": f"sqlite:///{tmp_path}/gw.db",
        "CALLGATE_RATE": "0",
        "CALLGATE_IDLE_POLL": "0.05",
        "CALLGATE_SWEEP_INTERVAL": "0.2",
        "CALLGATE_LEASE": "2",
        "CALLGATE_RECONCILE_RETRY_DELAY": "0.5",  # a poll that failed under load: soon again
        "CALLGATE_POLL_INITIAL": "3600",
        "CALLGATE_POLL_MAX": "3600",
        "CALLGATE_WEBHOOK_URL": f"{hooks.url}/hooks",
        "CALLGATE_WEBHOOK_SECRETS": generate_secret(),
    }
    # no callbacks: the fax ends while no serve is up to hear it
    server = ServeProcess.start(cwd=tmp_path, env=env, port=port)
    with server:
        auth = {"Authorization": f"Bearer {server.key}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as client:
            r = client.post("/v1/faxes", json={"to": "+12125550180", "media_url": PDF})
            job_id = r.json()["id"]
            wait_for(
                lambda: client.get(f"/v1/jobs/{job_id}").json()["provider_ref"] is not None,
                30,
                "Telnyx to accept the fax",
            )
        server.proc.kill()  # mid-fax: the attempt is under way at Telnyx
        server.proc.wait()
    again = ServeProcess.start(cwd=tmp_path, env=env, port=port, new_database=False)
    with again:
        auth = {"Authorization": f"Bearer {server.key}"}
        with httpx.Client(base_url=again.url, headers=auth, timeout=10) as client:
            wait_for(
                lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "delivered",
                60,
                "the restarted serve to reconcile the fax",
                state=lambda: (
                    {
                        k: v
                        for k, v in client.get(f"/v1/jobs/{job_id}").json().items()
                        if k in ("status", "reason", "detail", "attempts", "updated_at")
                    },
                    again.stderr.text[-2000:],
                ),
            )
            job = client.get(f"/v1/jobs/{job_id}").json()
        assert again.stop() == 0
    assert "Traceback" not in again.stderr.text, again.stderr.text
    assert job["attempts"] == 1
    [attempt] = job["attempt_log"]
    assert attempt["outcome"] == "delivered"
    assert attempt["provider_ref"] == job["provider_ref"]
    faxes = [c for c in sim.log_lines() if c["to"] == "+12125550180"]
    assert len(faxes) == 1  # never resent
