"""The guardrails end to end on virtual time, on both backends; the simulator's log is
the witness of what reached the provider."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callgate.clock import LoopClock
from callgate.config import Settings
from callgate.domain import Decision, Kind, Status
from callgate.engine.guardrails import GuardReason
from callgate.engine.worker import Worker
from callgate.gateway import Gateway
from callgate.store import Store
from callgate.testing import EPOCH, run_virtual, wait_until
from tests.simlog import read_log

BODY = "Your ballot is ready: reply STOP to opt out"
NYC, HONOLULU = "+12125550123", "+18085550123"


def numbers(n: int, prefix: str = "+1212200") -> list[str]:
    """Real-looking New York numbers (not the simulator's test numbers)."""
    return [f"{prefix}{i:04d}" for i in range(n)]


def drive(
    settings: Settings,
    setup: Callable[[Gateway], object],
    during: Callable[[Gateway, Worker], Coroutine[Any, Any, None]] | None = None,
) -> Gateway:
    async def main(clock: LoopClock) -> Gateway:
        gw = Gateway(settings, clock=clock, rng=random.Random(7))
        setup(gw)
        worker = gw.worker()
        task = asyncio.create_task(worker.run(drain=during is None))
        if during is not None:
            await during(gw, worker)
            worker.stop()
        await task
        return gw

    return run_virtual(main)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- the store's side, on both backends ---------------------------------------------------


def test_allowlist_and_suppressions_are_stored(store: Store) -> None:
    assert store.allowlist_add("+12125550123", 1.0, note="Ana")
    assert not store.allowlist_add("+12125550123", 2.0)
    assert store.allowlist_add("+1808555*", 1.0)
    assert [e["number"] for e in store.allowlist()] == ["+12125550123", "+1808555*"]
    assert store.allowlist_remove("+1808555*")
    assert not store.allowlist_remove("+1808555*")

    assert store.suppress(NYC, "sms", "unsubscribed", 1.0, source="error_rule")
    assert store.suppress(HONOLULU, None, "manual", 1.0)
    assert store.number_facts(NYC, "sms", 0).suppressed
    assert not store.number_facts(NYC, "call", 0).suppressed  # for sms only
    assert store.number_facts(HONOLULU, "fax", 0).suppressed  # every kind
    assert [(s["number"], s["kind"]) for s in store.suppressions()] == [
        (NYC, "sms"),
        (HONOLULU, None),
    ]
    assert store.unsuppress(NYC) == 1
    assert not store.number_facts(NYC, "sms", 0).suppressed


def test_breaker_state_and_history(store: Store) -> None:
    assert store.breaker_state()[0] is False
    assert store.set_breaker(True, 10.0, reason="manual", detail="kill switch", actor="ana")
    assert not store.set_breaker(True, 11.0, reason="manual", detail="again", actor="ana")
    assert store.breaker_state()[:3] == (True, "manual", "kill switch")
    assert store.set_breaker(False, 20.0, reason="reset", detail="all clear", actor="bo")
    log = store.breaker_log()
    assert [(e["action"], e["detail"], e["by"]) for e in log] == [
        ("reset", "all clear", "bo"),
        ("tripped", "kill switch", "ana"),
    ]


def test_held_jobs_are_released_when_their_hold_ends(store: Store) -> None:
    from callgate.domain import make_spec

    [result] = store.submit([make_spec("sms", to=NYC, body=BODY)], 100.0)
    held = Decision(Status.HELD, GuardReason.QUIET_HOURS, "quiet", run_at=200.0)
    assert store.refuse(result.job.id, held, 100.0)
    assert store.get_job(result.job.id).status is Status.HELD
    assert store.release_held(199.0) == 0
    assert store.release_held(200.0) == 1
    assert store.get_job(result.job.id).status is Status.QUEUED


# -- the tests --------------------------------------------------------------------


def test_development_contacts_only_the_allowlisted_numbers(make_settings, tmp_path: Path):
    everyone = numbers(1000)
    allowed = everyone[::100]
    settings = make_settings(environment="development", allowlist=allowed)

    def setup(gw: Gateway) -> None:
        gw.submit_many([gw.spec("sms", to=n, body=BODY) for n in everyone])

    gw = drive(settings, setup)
    contacted = {line["to"] for line in read_log(tmp_path / "sim.log")}
    assert contacted == set(allowed)
    jobs = gw.store.list_jobs(limit=2000)
    assert Counter(j.status for j in jobs) == {Status.DELIVERED: 10, Status.BLOCKED: 990}
    blocked = [j for j in jobs if j.status is Status.BLOCKED]
    assert {j.reason for j in blocked} == {"not_allowlisted"}
    assert all("allowlist" in (j.detail or "") for j in blocked)
    assert gw.store.events(blocked[0].id)[-1].type == "job.blocked"


def test_the_allowlist_is_checked_again_at_send_time(make_settings, tmp_path: Path):
    settings = make_settings(environment="staging", allowlist=[])

    def setup(gw: Gateway) -> None:
        gw.store.allowlist_add(NYC, gw.clock.now())
        assert gw.send("sms", to=NYC, body=BODY).job.status is Status.QUEUED
        gw.store.allowlist_remove(NYC)  # removed before the worker got to it

    gw = drive(settings, setup)
    assert read_log(tmp_path / "sim.log") == []
    [job] = gw.store.list_jobs()
    assert (job.status, job.reason) == (Status.BLOCKED, "not_allowlisted")


def test_one_reminder_a_hundred_times_reaches_the_person_no_more_than_the_cap(
    make_settings, tmp_path: Path
):
    settings = make_settings(caps={"sms": "3/24h"})

    def setup(gw: Gateway) -> None:
        for _ in range(100):  # no idempotency key, the same content
            gw.send("sms", to=NYC, body=BODY)

    gw = drive(settings, setup)
    assert len(read_log(tmp_path / "sim.log")) == 3
    jobs = gw.store.list_jobs()
    assert Counter(j.status for j in jobs) == {Status.DELIVERED: 3, Status.HELD: 97}
    held = [j for j in jobs if j.status is Status.HELD]
    assert {j.reason for j in held} == {"over_cap"}
    first = min(a.started_at for j in jobs for a in gw.store.attempts(j.id))
    assert {j.run_at.timestamp() for j in held} == {first.timestamp() + 86400}
    assert "3/24h" in (held[0].detail or "")


def test_over_the_cap_can_block_instead(make_settings, tmp_path: Path) -> None:
    settings = make_settings(caps={"call": "1/24h", "over": "block"})
    gw = drive(
        settings,
        lambda gw: [gw.send("call", to=NYC, twiml="<Response/>") for _ in range(3)],
    )
    assert len(read_log(tmp_path / "sim.log")) == 1
    assert Counter(j.status for j in gw.store.list_jobs()) == {
        Status.DELIVERED: 1,
        Status.BLOCKED: 2,
    }


def test_quiet_hours_across_zones(make_settings, tmp_path: Path) -> None:
    settings = make_settings(quiet_hours={"sms": "21:00-08:00"}, sweep_interval=5.0)
    due = at("2027-01-15T03:00:00")  # 22:00 in New York, 17:00 in Honolulu

    def setup(gw: Gateway) -> None:
        gw.send("sms", to=NYC, body=BODY, not_before=due)
        gw.send("sms", to=HONOLULU, body=BODY, not_before=due)

    async def during(gw: Gateway, worker: Worker) -> None:
        def delivered() -> bool:
            return all(j.status is Status.DELIVERED for j in gw.store.list_jobs())

        await wait_until(delivered, step=60.0, timeout=2 * 86400)

    gw = drive(settings, setup, during)
    sent = {line["to"]: line["started_at"] for line in read_log(tmp_path / "sim.log")}
    assert due.timestamp() <= sent[HONOLULU] < due.timestamp() + 5
    # New York's quiet hours end at 08:00 EST = 13:00 UTC; the sweep releases it
    release = at("2027-01-15T13:00:00").timestamp()
    assert release <= sent[NYC] <= release + 10
    nyc = next(j for j in gw.store.list_jobs() if j.to == NYC)
    held = [e for e in gw.store.events(nyc.id) if e.type == "job.held"]
    assert held
    assert held[0].reason == "quiet_hours"
    assert "America/New_York" in (held[0].detail or "")


def test_breaker_trips_on_a_burst_loses_nothing_and_resumes_after_reset(
    make_settings, tmp_path: Path
) -> None:
    settings = make_settings(
        breaker={
            "enabled": True,
            "factor": 10,
            "baseline_minutes": 15,
            "min_per_minute": 60,
            "baseline_floor": 5,  # the baseline of 10 a minute is above it
        },
        rate=200 / 60,  # the burst can go out at 20× the baseline: 200 a minute
        burst=1.0,
        sweep_interval=5.0,
    )
    everyone = numbers(400)
    start = EPOCH
    burst_at = start + 16 * 60
    trip: dict[str, float] = {}

    def setup(gw: Gateway) -> None:
        specs = []
        for minute in range(16):  # a steady baseline: 10 a minute
            for i in range(10):
                when = datetime.fromtimestamp(start + minute * 60 + i * 6, UTC)
                specs.append(
                    gw.spec("sms", to=everyone[minute * 10 + i], body=BODY, not_before=when)
                )
        for n in everyone[160:]:  # then 240 at once
            when = datetime.fromtimestamp(burst_at, UTC)
            specs.append(gw.spec("sms", to=n, body=BODY, not_before=when))
        gw.submit_many(specs)

    async def during(gw: Gateway, worker: Worker) -> None:
        await wait_until(lambda: gw.store.breaker_state()[0], step=1.0, timeout=3600)
        trip["at"] = gw.clock.now()
        trip["sent"] = len(read_log(tmp_path / "sim.log"))
        await asyncio.sleep(600)  # ten quiet minutes: nothing more goes out
        trip["sent_later"] = len(read_log(tmp_path / "sim.log"))
        trip["queued"] = gw.store.counts()["queued"]
        gw.reset_breaker("checked the campaign: the burst is intended", actor="ana")

        def done() -> bool:
            return gw.store.counts()["delivered"] == 400

        await wait_until(done, step=1.0, timeout=3600)

    gw = drive(settings, setup, during)
    assert burst_at < trip["at"] <= burst_at + 60  # within one simulated minute
    assert trip["sent_later"] <= trip["sent"] + 5  # in flight finished, no new claims
    assert trip["queued"] > 0  # the rest stayed queued...
    assert Counter(j.status for j in gw.store.list_jobs(limit=1000)) == {Status.DELIVERED: 400}
    log = read_log(tmp_path / "sim.log")
    assert len(log) == 400
    assert len({line["to"] for line in log}) == 400
    history = gw.store.breaker_log()
    assert [h["action"] for h in history] == ["reset", "tripped"]
    assert history[0]["by"] == "ana"
    assert "intended" in history[0]["detail"]
    assert "baseline" in history[1]["detail"]


def test_a_stop_reply_suppresses_the_number(make_settings, tmp_path: Path) -> None:
    unsubscribed = "+15005550004"  # the simulator answers 21610

    def setup(gw: Gateway) -> None:
        gw.send("sms", to=unsubscribed, body=BODY)

    gw = drive(make_settings(), setup)
    [first] = gw.store.list_jobs()
    assert first.status is Status.FAILED
    [entry] = gw.store.suppressions(unsubscribed)
    assert (entry["kind"], entry["reason"], entry["source"]) == (
        "sms",
        "unsubscribed",
        "error_rule",
    )
    again = gw.send("sms", to=unsubscribed, body=BODY).job
    assert (again.status, again.reason) == (Status.BLOCKED, "suppressed")
    # a call to the same number is not affected
    assert gw.send("call", to=unsubscribed, twiml="<Response/>").job.status is Status.QUEUED
    assert entry["kind"] == Kind.SMS


def test_audit_rows_are_stored_per_attempt_and_pruned(store: Store) -> None:
    from callgate.domain import make_spec

    [result] = store.submit([make_spec("sms", to=NYC, body=BODY)], 100.0)
    job_id = result.job.id
    row = ("POST", "https://api.example/Messages.json", 201, "To=x", '{"sid": "SM1"}', 0.2, None)
    store.add_audit(job_id, 1, [row, row], 100.0)
    store.add_audit(job_id, 2, [row], 200.0)
    rows = store.audit(job_id)
    assert [(r["attempt"], r["status"], r["duration"]) for r in rows] == [
        (1, 201, 0.2),
        (1, 201, 0.2),
        (2, 201, 0.2),
    ]
    assert [r["attempt"] for r in store.audit(since=150.0)] == [2]
    assert [r["attempt"] for r in store.audit(after_id=rows[1]["id"])] == [2]
    assert store.prune_audit(150.0) == 2
    assert [r["attempt"] for r in store.audit(job_id)] == [2]


def test_a_retry_of_the_same_job_never_counts_against_the_cap(
    make_settings, tmp_path: Path
) -> None:
    """Caps count jobs that reached the person, once each: a call retried on a busy line
    is one call, and the cap holds the second call, not the first one's retries."""
    settings = make_settings(
        environment="staging",
        allowlist=["+1212*"],
        caps={"call": "1/24h"},
        simulator_mix={"busy": 1.0},
        call_max_attempts=3,
        call_retry_delay=60.0,
    )

    def setup(gw: Gateway) -> None:
        gw.send("call", to=NYC, twiml="<Response/>")
        gw.send("call", to=NYC, twiml="<Response><Say>again</Say></Response>")

    async def during(gw: Gateway, worker: Worker) -> None:
        def ended() -> bool:
            return gw.store.counts()["failed"] == 2  # busy every time, both calls

        await wait_until(ended, step=60.0, timeout=3 * 86400)

    gw = drive(settings, setup, during)
    first, second = sorted(gw.store.list_jobs(), key=lambda j: j.id)
    one = [a.started_at.timestamp() for a in gw.store.attempts(first.id)]
    two = [a.started_at.timestamp() for a in gw.store.attempts(second.id)]
    assert len(one) == 3  # every retry of the first call went out
    assert one[-1] - one[0] < 3600  # none of them waited for the cap
    assert two[0] >= one[0] + 86400  # the second call waited for the window
    assert len(read_log(tmp_path / "sim.log")) == 6
    held = [e for e in gw.store.events(second.id) if e.type == "job.held"]
    assert [e.reason for e in held] == ["over_cap"]
    assert "1 call job(s) within 1/24h" in (held[0].detail or "")


def test_identical_faxes_are_capped_different_ones_are_not(make_settings, tmp_path: Path):
    """An office gets its day of faxes; the same fax sent again and again is held."""
    settings = make_settings(
        environment="staging",
        allowlist=["+1212*"],
        caps={"fax": None, "fax_duplicates": "2/24h"},
    )
    office = "+12125550140"

    def setup(gw: Gateway) -> None:
        for i in range(40):
            gw.send("fax", to=office, media_url=f"https://example.org/ballot-{i}.pdf")
        for _ in range(5):
            gw.send("fax", to=office, media_url="https://example.org/same.pdf")

    async def during(gw: Gateway, worker: Worker) -> None:
        def settled() -> bool:
            counts = gw.store.counts()
            return counts["delivered"] + counts["held"] == 45

        await wait_until(settled, step=1.0, timeout=3600)

    gw = drive(settings, setup, during)
    assert len(read_log(tmp_path / "sim.log")) == 42
    jobs = gw.store.list_jobs(limit=100)
    held = [j for j in jobs if j.status is Status.HELD]
    assert len(held) == 3
    assert {j.payload["media_url"] for j in held} == {"https://example.org/same.pdf"}
    assert {j.reason for j in held} == {"over_cap"}
    assert "this very fax 2 time(s) within 2/24h" in (held[0].detail or "")


def test_cap_counts_read_only_the_window_however_long_the_history(
    store: Store, backend: str
) -> None:
    """The caps' query walks the jobs that reached the number within the window: a year
    of deliveries to one office costs nothing at send time (jobs_reached)."""
    from callgate.domain import make_spec

    office = "+12125550140"
    specs = [make_spec("fax", to=office, media_url=f"https://e.org/{i}.pdf") for i in range(300)]
    results = store.submit(specs, 0.0)
    ids = [r.job.id for r in results]
    with store._write() as c:  # type: ignore[attr-defined]
        c.executemany(
            "UPDATE jobs SET status = 'delivered', reached_at = ? WHERE id = ?",
            [(1000.0 + i, job_id) for i, job_id in enumerate(ids)],
        )
    facts = store.number_facts(office, "fax", 1249.0, job_id=ids[0], same_since=0.0)
    assert (facts.sent, facts.oldest) == (50, 1250.0)
    assert facts.same == 0  # no other job had this one's content
    if backend == "sqlite":  # PostgreSQL may well scan 300 rows; SQLite must not
        from callgate.store.sql_guardrails import REACHED_SQL

        params = {"number": office, "kind": "fax", "job": ids[0], "since": 1250.0}
        plan = store._read(  # type: ignore[attr-defined]
            "EXPLAIN QUERY PLAN " + REACHED_SQL, params | {"same": 0.0, "low": 0.0}
        )
        assert "USING INDEX jobs_reached" in " ".join(str(r) for r in plan)


def test_the_send_checks_of_one_moment_share_their_reads(make_settings, tmp_path: Path):
    """Jobs claimed together are checked together at send time: one read each of the
    breaker, the stored allowlist, the suppressions and the circuits for the group
    (not per job), and each job still gets its own answer."""
    settings = make_settings(environment="staging", allowlist=[], claim_batch=40)
    to = numbers(30)
    reads: Counter[str] = Counter()

    def setup(gw: Gateway) -> None:
        for number in to:
            gw.store.allowlist_add(number, gw.clock.now())
            gw.send("sms", to=number, body=BODY)
        gw.store.suppress(to[7], "sms", "unsubscribed", gw.clock.now())  # after submit
        gw.store.allowlist_remove(to[8])
        for name in ("breaker_state", "allowlist", "suppressed", "circuits", "number_facts"):
            counted = getattr(gw.store, name)

            def count(*args: Any, _name: str = name, _f: Any = counted, **kw: Any) -> Any:
                reads[_name] += 1
                return _f(*args, **kw)

            setattr(gw.store, name, count)

    gw = drive(settings, setup)
    jobs = {j.to: j for j in gw.store.list_jobs()}
    assert (jobs[to[7]].status, jobs[to[7]].reason) == (Status.BLOCKED, "suppressed")
    assert (jobs[to[8]].status, jobs[to[8]].reason) == (Status.BLOCKED, "not_allowlisted")
    assert Counter(j.status for j in jobs.values()) == {Status.DELIVERED: 28, Status.BLOCKED: 2}
    assert len(read_log(tmp_path / "sim.log")) == 28
    assert reads["number_facts"] == 0  # the one-job read is not on the send path
    assert 1 <= reads["suppressed"] <= 3  # 30 jobs claimed at once: a group or three
    assert reads["allowlist"] <= reads["suppressed"]
