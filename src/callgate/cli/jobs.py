"""``callgate jobs list|show|cancel|retry``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from callgate.cli.common import (
    IdArgument,
    JsonFlag,
    friendly,
    gateway,
    option_time,
    out,
    print_json,
)
from callgate.domain import MAX_ID, Job, Status
from callgate.exceptions import ValidationError

jobs_app = typer.Typer(help="List, show, cancel and retry jobs.", no_args_is_help=True)

# -- jobs ------------------------------------------------------------------------------


def job_table(jobs: list[Job]) -> Table:
    table = Table("id", "kind", "to", "status", "attempts", "reason", "updated")
    for job in jobs:
        table.add_row(
            str(job.id),
            str(job.kind),
            job.to or "-",
            str(job.status),
            str(job.attempts),
            job.reason or "",
            job.updated_at.strftime("%H:%M:%S"),
        )
    return table


@jobs_app.command("list")
@friendly
def jobs_list(
    status: Annotated[Status | None, typer.Option(help="Only jobs in this status.")] = None,
    to: Annotated[str | None, typer.Option(help="Only jobs to this number.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    from callgate.domain import normalize_number

    number = None if to is None else normalize_number(to)
    with gateway() as gw:
        jobs = gw.jobs.list(status=status, to=number, limit=limit)
    if as_json:
        print_json([j.to_dict() for j in jobs])
    else:
        out.print(job_table(jobs))


@jobs_app.command("show")
@friendly
def jobs_show(
    job_id: Annotated[int, typer.Argument(help="Job id.", min=1, max=MAX_ID)],
    as_json: JsonFlag = False,
) -> None:
    """Show one job with its attempts and events."""
    with gateway() as gw:
        job = gw.job(job_id)
        attempts = gw.jobs.attempts(job_id)
        events = gw.jobs.events(job_id)
        audit = gw.jobs.audit(job_id)
    if as_json:
        print_json(
            job.to_dict()
            | {
                "attempt_log": [a.to_dict() for a in attempts],
                "events": [e.to_dict() for e in events],
                "audit": audit,
            }
        )
        return
    out.print(job_table([job]))
    if job.detail:
        out.print(f"why: {job.detail}", markup=False)
    table = Table("#", "started", "outcome", "ref", "error", title="attempts")
    for a in attempts:
        error = " ".join(x for x in (a.error_code, a.error_message) if x)
        table.add_row(
            str(a.number) + ("" if a.counted else " (not counted)"),
            a.started_at.isoformat(timespec="seconds"),
            str(a.outcome or a.state),
            a.provider_ref or "",
            error,
        )
    out.print(table)
    table = Table("event", "type", "at", "reason", title="events")
    for e in events:
        table.add_row(str(e.id), e.type, e.created_at.isoformat(timespec="seconds"), e.reason or "")
    out.print(table)
    if audit:
        table = Table(
            "#", "request", "status", "ms", "response", title="audit (provider exchanges)"
        )
        for row in audit:
            table.add_row(
                str(row["attempt"] or ""),
                f"{row['method']} {row['url']}\n{row['request'] or ''}",
                str(row["status"] or row["error"] or ""),
                f"{row['duration'] * 1000:.0f}",
                (row["response"] or "")[:500],
            )
        out.print(table, markup=False)


def _steer(job_id: int, as_json: bool, action: str) -> None:
    with gateway() as gw:
        job = gw.cancel(job_id) if action == "cancel" else gw.retry(job_id)
    if as_json:
        print_json(job.to_dict())
    elif job.cancel_requested and job.status is Status.IN_FLIGHT:
        out.print(f"job {job.id} is in flight; it will be canceled when its attempt ends")
    else:
        out.print(f"job {job.id} is {job.status}")


@jobs_app.command("cancel")
@friendly
def jobs_cancel(job_id: IdArgument, as_json: JsonFlag = False) -> None:
    """Cancel a job: at once if waiting, after its attempt ends if in flight."""
    _steer(job_id, as_json, "cancel")


@jobs_app.command("retry")
@friendly
def jobs_retry(
    job_id: Annotated[
        int | None, typer.Argument(help="One job (or filters below).", min=1, max=MAX_ID)
    ] = None,
    status: Annotated[
        list[Status] | None,
        typer.Option(help="Jobs in this status (repeatable; default: failed)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="...that entered it at or after (ISO 8601).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="...with this reason.")] = None,
    batch: Annotated[int | None, typer.Option(help="...of this batch.", min=1, max=MAX_ID)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a failed, canceled, held, uncertain or blocked job again, with a fresh
    attempt budget; or every job the filters match (at least one is required)."""
    filtered = bool(status) or since is not None or reason is not None or batch is not None
    if job_id is not None:
        if filtered:
            raise ValidationError("give a job id or filters, not both", field="job_id")
        _steer(job_id, as_json, "retry")
        return
    with gateway() as gw:
        n = gw.retry_matching(
            statuses=status or (), since=option_time(since, "since"), reason=reason, batch_id=batch
        )
    if as_json:
        print_json({"retried": n})
    else:
        out.print(f"queued {n} job(s) again")
