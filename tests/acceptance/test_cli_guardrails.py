"""``callgate allowlist``, ``suppress`` and ``breaker``, the real command in a subprocess,
with the guardrails' defaults (the ``cg`` fixture turns them off; these tests turn the
allowlist and the breaker back on)."""

from __future__ import annotations

from tests.simlog import read_log

from .support import Callgate

NYC, OTHER = "+12125550123", "+12125550999"


def guarded(cg: Callgate) -> Callgate:
    del cg.env["CALLGATE_ALLOWLIST"]  # development: the simulator's numbers only
    cg.env["CALLGATE_BREAKER__ENABLED"] = "true"
    return cg


def test_allowlist_and_suppressions_from_the_command_line(cg: Callgate) -> None:
    guarded(cg)
    assert cg.run("allowlist", "add", "+1 212 555 0123", "--note", "Ana").returncode == 0
    listed = cg.json("allowlist", "list")
    assert listed["enforced"] is True
    assert [e["number"] for e in listed["data"]] == [NYC]
    assert "+1500555????" in listed["configured"]  # the simulator's numbers, in development

    blocked = cg.run("send", "sms", "--to", OTHER, "--body", "hi")
    assert "is blocked" in blocked.stdout
    assert "why [not_allowlisted]" in blocked.stdout
    assert cg.json("send", "sms", "--to", NYC, "--body", "hi")["status"] == "queued"

    assert cg.run("suppress", "add", NYC, "--kind", "sms", "--reason", "asked").returncode == 0
    [entry] = cg.json("suppress", "list")
    assert (entry["number"], entry["kind"], entry["reason"]) == (NYC, "sms", "asked")
    again = cg.json("send", "sms", "--to", NYC, "--body", "hi")
    assert (again["status"], again["reason"]) == ("blocked", "suppressed")

    done = cg.run("worker", "--drain")
    assert done.returncode == 0, done.stderr
    assert read_log(cg.log) == []  # the queued one was suppressed by send time
    assert cg.run("suppress", "remove", NYC).returncode == 0
    assert cg.json("suppress", "list") == []
    gone = cg.run("allowlist", "remove", OTHER)
    assert gone.returncode == 1
    assert "not_found" in gone.stderr


def test_the_kill_switch_stops_sending_until_a_person_resets_it(cg: Callgate) -> None:
    guarded(cg)
    tripped = cg.json("breaker", "trip", "--reason", "wrong list")
    assert (tripped["state"], tripped["detail"]) == ("open", "wrong list")
    job = cg.json("send", "sms", "--to", "+15005550006", "--body", "hi")
    run = cg.run("worker", "--drain")  # nothing it may do: it ends, the job stays queued
    assert run.returncode == 0, run.stderr
    assert "breaker is open" in run.stderr
    assert cg.json("jobs", "show", str(job["id"]))["status"] == "queued"
    assert read_log(cg.log) == []

    refused = cg.run("breaker", "reset")
    assert refused.returncode == 2  # --reason is required
    assert "reason" in refused.stderr
    reset = cg.json("breaker", "reset", "--reason", "list fixed")
    assert reset["state"] == "closed"
    assert [h["action"] for h in reset["history"]] == ["reset", "tripped"]
    assert cg.run("worker", "--drain").returncode == 0
    assert cg.json("jobs", "show", str(job["id"]))["status"] == "delivered"
    assert "OPEN" not in cg.run("breaker").stdout


def test_bulk_retry_and_the_providers_from_the_command_line(cg: Callgate) -> None:
    guarded(cg)
    strangers = [f"+1212555{i:04d}" for i in range(3)]
    for n in strangers:
        assert cg.json("send", "sms", "--to", n, "--body", "hi")["status"] == "blocked"
    refused = cg.run("jobs", "retry")
    assert refused.returncode == 1
    assert "filter_required" in refused.stderr
    both = cg.run("jobs", "retry", "1", "--status", "blocked")
    assert both.returncode == 1
    assert "not both" in both.stderr
    assert cg.run("allowlist", "add", "+1212555*").returncode == 0
    retried = cg.json("jobs", "retry", "--status", "blocked", "--reason", "not_allowlisted")
    assert retried == {"retried": 3}
    assert "queued 0 job(s) again" in cg.ok("jobs", "retry", "--status", "blocked")
    assert {j["status"] for j in cg.jobs()} == {"queued"}

    [sim] = cg.json("providers")
    assert (sim["name"], sim["state"], sim["waiting"]) == ("simulator", "closed", 0)
    table = cg.ok("providers")
    assert "simulator" in table
    assert "closed" in table
