"""Records for tests that need a Job without a store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from callgate.domain import Job, Kind, Status

T = datetime(2030, 1, 1, tzinfo=UTC)


def in_flight_job(
    to: str = "+15005550006", kind: Kind = Kind.FAX, job_id: int = 1, **fields: Any
) -> Job:
    return Job(
        id=job_id,
        kind=kind,
        to=to,
        group_key=to,
        status=Status.IN_FLIGHT,
        payload={},
        attempts=0,
        reason=None,
        created_at=T,
        updated_at=T,
        run_at=T,
        **fields,
    )
