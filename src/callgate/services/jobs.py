"""Reading jobs: lists, one job's whole story, and where the queue stands per number."""

from __future__ import annotations

import builtins
from typing import Any

from callgate.domain import Attempt, Event, Job, Status
from callgate.services.base import Service
from callgate.store.parts import JobsStore


class JobsService(Service[JobsStore]):
    def list(
        self,
        *,
        status: Status | None = None,
        to: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        kind: str | None = None,
        batch_id: int | None = None,
    ) -> builtins.list[Job]:
        """Jobs, newest first."""
        return self._store.list_jobs(
            status=status,
            to=to,
            limit=limit,
            before_id=before_id,
            created_after=created_after,
            created_before=created_before,
            kind=kind,
            batch_id=batch_id,
        )

    def after(
        self, after_id: int, *, created_after: float | None = None, limit: int = 1000
    ) -> builtins.list[Job]:
        """Oldest first, after job ``after_id`` (an export's cursor)."""
        return self._store.jobs_after(after_id, created_after=created_after, limit=limit)

    def get(self, job_id: int) -> Job:
        return self._store.get_job(job_id)

    def attempts(self, job_id: int) -> builtins.list[Attempt]:
        return self._store.attempts(job_id)

    def events(self, job_id: int) -> builtins.list[Event]:
        return self._store.events(job_id)

    def audit(self, job_id: int) -> builtins.list[dict[str, Any]]:
        """The job's provider requests and responses, oldest first."""
        return self._store.audit(job_id)

    def summary(self, limit: int = 50) -> builtins.list[tuple[str, dict[str, int]]]:
        """Per number (group), its jobs per status."""
        return self._store.group_summary(limit)
