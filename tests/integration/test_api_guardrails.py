"""``/v1/allowlist``, ``/v1/suppressions``, ``/v1/breaker``: a person steers the guardrails."""

from __future__ import annotations

from callgate.api.guardrails import AllowlistOut, BreakerOut, SuppressionList
from callgate.api.models import JobOut
from tests.integration import test_api as api_tests
from tests.integration.test_api import Api, MakeApi, error, valid

# the API tests' fixtures: an in-process API over a fresh database, names resolved by DNS
make_api, api, fake_dns = api_tests.make_api, api_tests.api, api_tests.fake_dns

NYC = "+12125550123"


def test_allowlist_add_list_remove(make_api: MakeApi) -> None:
    gate = make_api(environment="staging", allowlist=["+1808555*"])
    blocked = gate.sms(NYC)
    assert (blocked["status"], blocked["reason"]) == ("blocked", "not_allowlisted")
    assert "allowlist" in blocked["detail"]
    r = gate.post("/v1/allowlist", json={"number": "+1 212 555 0123", "note": "Ana"})
    assert r.status_code == 201, r.text
    assert r.json()["number"] == NYC
    body = valid(AllowlistOut, gate.get("/v1/allowlist"))
    assert body["enforced"] is True
    assert body["configured"] == ["+1808555*"]
    assert [e["number"] for e in body["data"]] == [NYC]
    assert gate.sms(NYC)["status"] == "queued"
    assert gate.request("DELETE", f"/v1/allowlist/{NYC}").status_code == 204
    error(gate.request("DELETE", f"/v1/allowlist/{NYC}"), 404, "not_found", "number")


def test_suppressions_block_new_jobs(api: Api) -> None:
    r = api.post("/v1/suppressions", json={"number": NYC, "kind": "sms", "reason": "asked"})
    assert r.status_code == 201, r.text
    job = api.sms(NYC)
    assert (job["status"], job["reason"]) == ("blocked", "suppressed")
    assert "suppression list" in job["detail"]
    listed = valid(SuppressionList, api.get("/v1/suppressions", params={"number": NYC}))
    assert [(s["kind"], s["reason"]) for s in listed["data"]] == [("sms", "asked")]
    assert api.request("DELETE", f"/v1/suppressions/{NYC}").status_code == 204
    assert valid(JobOut, api.post(f"/v1/jobs/{job['id']}/retry"))["status"] == "queued"


def test_breaker_trip_and_reset_with_a_reason(api: Api) -> None:
    assert valid(BreakerOut, api.get("/v1/breaker"))["state"] == "closed"
    tripped = valid(BreakerOut, api.post("/v1/breaker/trip", json={"reason": "wrong list"}))
    assert (tripped["state"], tripped["detail"]) == ("open", "wrong list")
    assert "api key test" in tripped["by"]
    error(api.post("/v1/breaker/reset", json={}), 400, "missing_field", "reason")
    reset = valid(BreakerOut, api.post("/v1/breaker/reset", json={"reason": "list fixed"}))
    assert reset["state"] == "closed"
    assert [h["action"] for h in reset["history"]] == ["reset", "tripped"]
    assert reset["history"][0]["detail"] == "list fixed"


def test_a_request_is_guarded_as_the_number_its_params_name(make_api: MakeApi) -> None:
    """A Verify names its number in params.To: that number meets the allowlist."""
    gate = make_api(environment="development", allowlist=["+1212555*"])
    body = {"api": "verify", "params": {"ServiceSid": "VA1", "To": "+13105550100"}}
    job = valid(JobOut, gate.post("/v1/requests", json=body))
    assert (job["to"], job["status"], job["reason"]) == (
        "+13105550100",
        "blocked",
        "not_allowlisted",
    )
    allowed = {"api": "verify", "params": {"ServiceSid": "VA1", "To": NYC}}
    assert valid(JobOut, gate.post("/v1/requests", json=allowed))["status"] == "queued"


def test_bulk_retry_queues_every_match_and_needs_a_filter(make_api: MakeApi) -> None:
    gate = make_api(environment="staging", allowlist=["+1808555*"])
    blocked = [gate.sms(f"+1212555{i:04d}")["id"] for i in range(3)]
    kept = gate.sms("+18085550100")
    assert kept["status"] == "queued"
    error(gate.post("/v1/jobs/retry", json={}), 400, "filter_required", "status")
    error(gate.post("/v1/jobs/retry", json={"status": ["delivered"]}), 400, "invalid_request")
    none = gate.post("/v1/jobs/retry", json={"status": ["blocked"], "reason": "over_cap"})
    assert none.json() == {"retried": 0}
    gate.post("/v1/allowlist", json={"number": "+1212555*"})
    r = gate.post(
        "/v1/jobs/retry",
        json={"status": ["blocked"], "since": "2000-01-01T00:00:00Z", "reason": "not_allowlisted"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"retried": 3}
    for job_id in blocked:
        job = valid(JobOut, gate.get(f"/v1/jobs/{job_id}"))
        assert (job["status"], job["reason"], job["attempts"]) == ("queued", "retry_requested", 0)
    assert gate.post("/v1/jobs/retry", json={"status": "blocked"}).json() == {"retried": 0}
    error(gate.post("/v1/jobs/retry", json={"status": []}), 400, "invalid_request", "status")


def test_providers_show_their_circuits(api: Api) -> None:
    from callgate.api.guardrails import ProviderList

    body = valid(ProviderList, api.get("/v1/providers"))
    [sim] = body["data"]
    assert (sim["name"], sim["state"], sim["waiting"]) == ("simulator", "closed", 0)
    assert sim["kinds"] == ["call", "fax", "request", "sms"]
