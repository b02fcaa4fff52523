"""The seeds' workflows on the product's own defaults, on virtual time, on both backends.

Nothing here turns a guardrail off: the environment is ``development`` (the default), the
allowlist is one pattern as a user would set it, and every other setting (account rate,
caps, quiet hours, the breaker, the provider circuits) is what a fresh install has. The
clock starts at 13:00 in New York, where the numbers are (quiet hours are on)."""

from __future__ import annotations

import asyncio
import io
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from callgate.clock import LoopClock
from callgate.config import Settings
from callgate.domain import Status
from callgate.gateway import Gateway
from callgate.testing import EPOCH, run_virtual, wait_until
from tests.simlog import read_log

#: 2027-01-15 18:00 UTC: 13:00 in New York
AFTERNOON = EPOCH + 6 * 3600
ALLOWLIST = "+1212555*"
OFFICE = "+12125550140"  # a county election office's fax line
PERSON = "+12125550123"


def defaults(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """A fresh install's settings, with the allowlist a new user sets."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "simulator_log": tmp_path / "sim.log",
        "allowlist": [ALLOWLIST],
    }
    return Settings(**(fields | overrides))


def run(settings: Settings, body: Callable[[Gateway, LoopClock], Coroutine[Any, Any, Any]]) -> Any:
    async def main(clock: LoopClock) -> Any:
        gw = Gateway(settings, clock=clock, rng=random.Random(11))
        try:
            return await body(gw, clock)
        finally:
            gw.close()

    return run_virtual(main, epoch=AFTERNOON)


def sent(tmp_path: Path) -> list[dict[str, Any]]:
    return read_log(tmp_path / "sim.log")


def test_a_first_campaign_completes_without_tripping_the_breaker(
    database_url: str, tmp_path: Path
) -> None:
    """Seed 001: a fresh install, a 2,000-row SMS campaign asked at 50/s (the account's
    default rate of 10/s meters it): every row is sent, the breaker stays closed."""
    rows = "".join(f"+1212555{i:04d},reminder {i}\n" for i in range(2000))

    async def body(gw: Gateway, clock: LoopClock) -> Any:
        batch = gw.submit_batch(io.BytesIO(("To,Body\n" + rows).encode()), kind="sms", rate=50)
        await gw.run_worker(drain=True)
        return gw.store.get_batch(batch.id, clock.now()), gw.breaker(), clock.now()

    batch, breaker, ended = run(defaults(database_url, tmp_path), body)
    assert breaker["state"] == "closed"
    assert batch.status == "completed"
    assert batch.counts == {"delivered": 2000}
    assert len(sent(tmp_path)) == 2000
    assert ended - AFTERNOON < 2000 / 10 + 30  # at the account's rate


def test_an_election_office_gets_its_day_of_faxes(database_url: str, tmp_path: Path) -> None:
    """Seed 000: forty different ballot requests to one office's line all go out, one at a
    time; the same fax sent over and over is what the fax cap holds."""

    async def body(gw: Gateway, clock: LoopClock) -> Any:
        for voter in range(40):
            gw.send("fax", to=OFFICE, media_url=f"https://example.org/ballot-{voter}.pdf")
        await gw.run_worker(drain=True)
        return gw.store.list_jobs(limit=100)

    jobs = run(defaults(database_url, tmp_path), body)
    assert Counter(j.status for j in jobs) == {Status.DELIVERED: 40}
    assert len(sent(tmp_path)) == 40


def test_the_quick_start_sms_can_be_repeated(database_url: str, tmp_path: Path) -> None:
    """The README's SMS to the simulator's test number, again and again: nobody is behind a
    test number, so no cap holds it."""

    async def body(gw: Gateway, clock: LoopClock) -> Any:
        for i in range(10):
            gw.send("sms", to="+15005550006", body=f"hello {i}")
        await gw.run_worker(drain=True)
        return gw.store.list_jobs(limit=100)

    jobs = run(defaults(database_url, tmp_path), body)
    assert Counter(j.status for j in jobs) == {Status.DELIVERED: 10}


def test_one_reminder_a_hundred_times_reaches_the_person_at_most_three_times(
    database_url: str, tmp_path: Path
) -> None:
    """Seed 002: a loop submits one reminder 100 times to a real person's number."""

    async def body(gw: Gateway, clock: LoopClock) -> Any:
        for _ in range(100):
            gw.send("sms", to=PERSON, body="Your appointment is tomorrow at 9")
        await gw.run_worker(drain=True)
        return gw.store.list_jobs(limit=200)

    jobs = run(defaults(database_url, tmp_path), body)
    assert len(sent(tmp_path)) == 3
    assert Counter(j.status for j in jobs) == {Status.DELIVERED: 3, Status.HELD: 97}
    assert {j.reason for j in jobs if j.status is Status.HELD} == {"over_cap"}


def test_the_breaker_still_trips_on_a_runaway_loop(database_url: str, tmp_path: Path) -> None:
    """Seed 002's fear, on a deployment that raised its account rate to 50/s: twenty
    minutes at one fax a second through the API, then a loop sending 20 a second to three
    numbers. The breaker trips within a minute; nothing is lost; a reset resumes it."""
    seen: dict[str, Any] = {}
    loop_numbers = ["+12125550301", "+12125550302", "+12125550303"]

    async def body(gw: Gateway, clock: LoopClock) -> Any:
        worker = gw.worker()
        task = asyncio.create_task(worker.run())
        for i in range(20 * 60):  # the deployment's ordinary pace
            gw.send("fax", to=f"+1212555{i % 1000:04d}", media_url=f"https://e.org/{i}.pdf")
            await asyncio.sleep(1.0)
        seen["loop_at"] = clock.now()
        i = 0
        while gw.breaker()["state"] == "closed" and clock.now() < seen["loop_at"] + 300:
            n = loop_numbers[i % 3]
            gw.send("fax", to=n, media_url=f"https://e.org/loop-{i}.pdf")
            i += 1
            await asyncio.sleep(0.05)
        seen["tripped_at"] = clock.now()
        seen["submitted"] = 20 * 60 + i
        await asyncio.sleep(60)
        seen["sent_while_open"] = len(sent(tmp_path))
        await asyncio.sleep(60)
        seen["sent_later"] = len(sent(tmp_path))
        seen["breaker"] = gw.breaker()
        gw.reset_breaker("the loop is fixed; the queued faxes are real", actor="ana")
        await wait_until(
            lambda: gw.store.counts()["delivered"] == seen["submitted"], step=1.0, timeout=3600
        )
        worker.stop()
        await task
        return gw.store.counts()

    counts = run(defaults(database_url, tmp_path, rate=50), body)
    assert seen["tripped_at"] - seen["loop_at"] <= 60
    assert seen["sent_later"] == seen["sent_while_open"]  # no new sends while open
    assert seen["breaker"]["rule"] == "baseline"
    assert "not of a batch" in seen["breaker"]["detail"]
    assert counts["delivered"] == seen["submitted"]  # nothing lost
