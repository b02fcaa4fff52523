"""Reconciliation's look-up at Twilio: the window is applied to ``date_created``, which
Twilio gives in whole seconds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from callgate.domain import Kind, Outcome
from callgate.providers.twilio import TwilioProvider
from tests.factories import in_flight_job

MADE = datetime(2026, 12, 4, 20, 0, 0, tzinfo=UTC)  # Twilio says :00 for a send at :00.95


def record(sid: str, created: datetime) -> SimpleNamespace:
    return SimpleNamespace(
        sid=sid,
        status="delivered",
        error_code=None,
        error_message=None,
        date_created=created,
        date_updated=created,
    )


class Listing:
    def __init__(self, records: list[SimpleNamespace]) -> None:
        self.records = records

    async def list_async(self, **_: Any) -> list[SimpleNamespace]:
        return self.records


def test_a_record_made_in_the_windows_first_second_is_found() -> None:
    """A window opening at :00.4 finds the message Twilio dates :00 (it was made at
    :00.4 or later within that second). Compared with the second-rounded date it was
    missed: reconciliation took the attempt for never sent, queued the job again and it
    was sent twice (bench/chaos.py's repeated kills, with its 0.5 s pad)."""
    provider = TwilioProvider(account_sid="AC1", auth_token="t0ken", from_number="+15005550006")
    provider.client = SimpleNamespace(  # type: ignore[assignment]
        messages=Listing(
            [record("SM1", MADE), record("SM0", MADE.replace(second=0, minute=59, hour=19))]
        )
    )
    job = in_flight_job("+12125550100", Kind.SMS, 1)
    since = MADE.timestamp() + 0.4  # the attempt started at :00.4, a pad of 0
    found = asyncio.run(provider.find(job, since, since + 5))
    assert [(f.ref, f.result.outcome) for f in found] == [("SM1", Outcome.DELIVERED)]
    assert asyncio.run(provider.find(job, since + 1, since + 5)) == []  # from :01.4 on: not it
