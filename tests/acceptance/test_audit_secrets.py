"""The audit log end to end: a worker sends through the Twilio and SignalWire adapters to
``callgate simulator`` over HTTP; every request and response is stored per attempt, and
no credential appears in the database file or in the worker's log."""

from __future__ import annotations

import json
import time
from typing import Any

from callgate.domain import make_spec
from callgate.store.sqlite import SQLiteStore

from .providers_support import SIM, SimProcess
from .support import Callgate
from .test_providers_http import FROM, PDF, home, sim

__all__ = ["home", "sim"]  # the simulator over HTTP, shared with test_providers_http
SECRETS = (SIM["twilio_auth_token"], SIM["signalwire_api_token"])


def vendors(cg: Callgate, sim: SimProcess, **extra: str) -> None:
    cg.env |= {
        "CALLGATE_PROVIDER_SMS": "twilio",
        "CALLGATE_PROVIDER_FAX": "signalwire",
        "CALLGATE_TWILIO_ACCOUNT_SID": SIM["twilio_account_sid"],
        "CALLGATE_TWILIO_AUTH_TOKEN": SIM["twilio_auth_token"],
        "CALLGATE_TWILIO_FROM": FROM,
        "CALLGATE_TWILIO_BASE_URL": sim.url,
        "CALLGATE_SIGNALWIRE_PROJECT_ID": SIM["signalwire_project_id"],
        "CALLGATE_SIGNALWIRE_API_TOKEN": SIM["signalwire_api_token"],
        "CALLGATE_SIGNALWIRE_SPACE_URL": sim.url,
        "CALLGATE_SIGNALWIRE_FROM": FROM,
        **extra,
    }
    cg.env.pop("CALLGATE_SIMULATOR_LOG")


def submit(cg: Callgate) -> list[int]:
    store = SQLiteStore(str(cg.db))
    try:
        specs = [
            make_spec("sms", to="+12125550140", body="Your ballot request arrived"),
            make_spec("fax", to="+12125550141", media_url=PDF),
        ]
        return [r.job.id for r in store.submit(specs, time.time())]
    finally:
        store.close()


def stored_bytes(cg: Callgate) -> bytes:
    return b"".join(p.read_bytes() for p in cg.home.glob("callgate.db*"))


def test_every_exchange_is_audited_and_no_secret_is_stored_or_logged(
    cg: Callgate, sim: SimProcess
) -> None:
    vendors(cg, sim)
    ids = submit(cg)
    done = cg.run("worker", "--drain", env={"CALLGATE_DEBUG": "1"}, timeout=90)
    assert done.returncode == 0, done.stderr
    shown: list[dict[str, Any]] = [cg.json("jobs", "show", str(i)) for i in ids]
    assert [j["status"] for j in shown] == ["delivered", "delivered"]
    for job in shown:
        audit = job["audit"]
        assert audit, job
        first = audit[0]
        assert first["attempt"] == 1
        assert first["method"] == "POST"
        assert first["url"].startswith(sim.url)
        assert first["status"] in (200, 201)
        assert first["response"]
        assert first["duration"] >= 0
    sms = shown[0]["audit"][0]
    assert "Body=Your+ballot+request+arrived" in sms["request"]
    assert "+12125550140" in sms["request"] or "%2B12125550140" in sms["request"]

    exported = cg.run("audit", "export", "--since", "2000-01-01T00:00:00Z")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert {line["job_id"] for line in lines} == set(ids)

    logged = done.stdout + done.stderr + exported.stdout
    for secret in SECRETS:
        assert secret.encode() not in stored_bytes(cg)
        assert secret not in logged


def test_mask_pii_masks_numbers_and_content(cg: Callgate, sim: SimProcess) -> None:
    vendors(cg, sim, CALLGATE_AUDIT__MASK_PII="true")
    ids = submit(cg)
    assert cg.run("worker", "--drain", timeout=90).returncode == 0
    sms = cg.json("jobs", "show", str(ids[0]))["audit"][0]
    assert "ballot" not in sms["request"]
    assert "12125550140" not in sms["request"]
    assert "12125550140" not in (sms["response"] or "")
    pruned = cg.run("audit", "prune", "--older-than", "0")
    assert pruned.returncode == 0
    assert "deleted" in pruned.stdout
    assert cg.json("jobs", "show", str(ids[0]))["audit"] == []
