"""``callgate batch ...``: submit a CSV/JSON file with a live progress bar, show, pause,
resume and cancel a batch, and export its errors and results."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from callgate.batches import ERROR_COLUMNS, RESULT_COLUMNS, BatchRejected, csv_chunks, jsonl_chunks
from callgate.cli.common import IdArgument, JsonFlag, err, friendly, gateway, out, print_json
from callgate.domain import MAX_RATE, MIN_RATE, TERMINAL, Batch
from callgate.exceptions import ValidationError
from callgate.services import BatchesService

batch_app = typer.Typer(help="Submit, watch, steer and export batches.", no_args_is_help=True)
#: seconds between two looks at a running batch's counts
POLL = 0.5


@batch_app.command("submit")
@friendly
def batch_submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    kind: Annotated[
        str | None, typer.Option(help="sms|call|fax|request, for rows without an api column.")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(min=MIN_RATE, max=MAX_RATE, help="Calls per second.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name to know the batch by.")] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="One invalid row rejects the whole batch.")
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Print the batch id and exit at once.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Queue every valid row of FILE (CSV with a header, JSON or JSON Lines); report the
    invalid ones; then show progress until every job has ended (unless --detach)."""
    with gateway() as gw, _batch_file(file, gw.settings.max_batch_bytes) as stream:
        try:
            batch = gw.submit_batch(
                stream, kind=kind, filename=file.name, name=name, rate=rate, strict=strict
            )
        except BatchRejected as exc:
            for e in exc.errors:
                col = f" column {e.column}" if e.column else ""
                err.print(f"line {e.line}{col}: [{e.code}] {e.message}", markup=False)
            raise
        _report_invalid(batch)
        if detach:
            if as_json:
                print_json(batch.to_dict())
            else:
                out.print(batch.id)
            return
        batch = _watch(gw.batches, batch, quiet=as_json)
    if as_json:
        print_json(batch.to_dict())
    else:
        out.print(_summary(batch))


def _batch_file(file: Path, limit: int) -> IO[bytes]:
    """FILE, opened, if it is a file of at most ``limit`` bytes (CALLGATE_MAX_BATCH_BYTES,
    the API's limit too): ``/dev/zero``, a pipe or a 20 GB file is refused up front."""
    stream = file.open("rb")
    info = os.fstat(stream.fileno())
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        stream.close()
        what = "not a regular file" if not stat.S_ISREG(info.st_mode) else "too large"
        raise ValidationError(
            f"{file} is {what}: a batch is a CSV or JSON file of at most {limit} bytes",
            field="file",
        )
    return stream


def _report_invalid(batch: Batch) -> None:
    skipped = batch.invalid_rows + batch.duplicate_rows
    if skipped:
        err.print(
            f"batch {batch.id}: {batch.invalid_rows} invalid and {batch.duplicate_rows} "
            f"duplicate row(s) not queued; see `callgate batch errors {batch.id}`",
            markup=False,
        )


def _counts(batch: Batch) -> tuple[int, int, int, int]:
    """(ended, delivered, failed, not yet ended) jobs of the batch."""
    ended = sum(n for s, n in batch.counts.items() if s in TERMINAL)
    delivered = batch.counts.get("delivered", 0)
    failed = ended - delivered
    return ended, delivered, failed, sum(batch.counts.values()) - ended


def _watch(batches: BatchesService, batch: Batch, *, quiet: bool) -> Batch:
    total = sum(batch.counts.values())
    columns = (
        TextColumn("batch {task.fields[id]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("queued {task.fields[waiting]}  delivered {task.fields[delivered]}"),
        TextColumn(
            "failed {task.fields[failed]}  {task.fields[rate]:.1f}/s  ETA {task.fields[eta]}"
        ),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, disable=quiet, transient=False) as bar:
        task = bar.add_task(
            "", total=total, id=batch.id, waiting=total, delivered=0, failed=0, rate=0.0, eta="-"
        )
        while True:
            ended, delivered, failed, waiting = _counts(batch)
            eta = batch.eta_seconds
            bar.update(
                task,
                completed=ended,
                waiting=waiting,
                delivered=delivered,
                failed=failed,
                rate=batch.achieved_rate or 0.0,
                eta=f"{eta:.0f}s" if eta is not None and waiting else "-",
            )
            if batch.done:
                return batch
            time.sleep(POLL)  # a person watches a bar; the workers run elsewhere
            batch = batches.get(batch.id)


def _summary(batch: Batch) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(batch.counts.items())) or "no jobs"
    pace = ""
    if batch.achieved_rate is not None and batch.status == "running":
        pace = f"; {batch.achieved_rate:.1f}/s"
        if batch.current_rate is not None:
            pace += f" of {batch.current_rate:g}/s"
        if batch.eta_seconds is not None:
            pace += f", ETA {batch.eta_seconds:.0f} s"
    return f"batch {batch.id} is {batch.status}: {counts}{pace}"


@batch_app.command("show")
@friendly
def batch_show(batch_id: IdArgument, as_json: JsonFlag = False) -> None:
    """A batch's rows and its jobs' counts per status."""
    with gateway() as gw:
        batch = gw.batches.get(batch_id)
    print_json(batch.to_dict()) if as_json else out.print(_summary(batch))


def _steer(batch_id: int, action: str, as_json: bool) -> None:
    with gateway() as gw:
        batch = getattr(gw.batches, action)(batch_id)
    print_json(batch.to_dict()) if as_json else out.print(_summary(batch))


@batch_app.command("pause")
@friendly
def batch_pause(batch_id: IdArgument, as_json: JsonFlag = False) -> None:
    """Hold the batch's queued jobs until it is resumed."""
    _steer(batch_id, "pause", as_json)


@batch_app.command("resume")
@friendly
def batch_resume(batch_id: IdArgument, as_json: JsonFlag = False) -> None:
    """Queue the jobs a pause held again."""
    _steer(batch_id, "resume", as_json)


@batch_app.command("cancel")
@friendly
def batch_cancel(batch_id: IdArgument, as_json: JsonFlag = False) -> None:
    """Cancel every job of the batch not yet ended."""
    _steer(batch_id, "cancel", as_json)


Output = Annotated[
    Path | None, typer.Option("-o", "--output", help="Write here (default: standard output).")
]


def _write(chunks: Iterator[str], output: Path | None) -> None:
    stream: IO[str]
    try:
        target = output.open("w", newline="") if output else _stdout()
    except OSError as exc:  # a directory, no permission, no such folder
        raise ValidationError(
            f"cannot write {output}: {exc.strerror or exc}", field="output"
        ) from None
    with target as stream:
        for chunk in chunks:
            stream.write(chunk)


class _stdout:
    def __enter__(self) -> IO[str]:
        return sys.stdout

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()


@batch_app.command("results")
@friendly
def batch_results(
    batch_id: IdArgument,
    output: Output = None,
    format: Annotated[str, typer.Option(help="csv or jsonl")] = "csv",
) -> None:
    """One row per input row: line, job id, final status, provider SID, error, attempts."""
    if format not in ("csv", "jsonl"):
        raise typer.BadParameter("csv or jsonl", param_hint="--format")
    with gateway() as gw:
        gw.batches.exists(batch_id)
        rows = gw.batches.all_results(batch_id)
        writer = csv_chunks if format == "csv" else jsonl_chunks
        _write(writer(rows, RESULT_COLUMNS), output)


@batch_app.command("errors")
@friendly
def batch_errors(batch_id: IdArgument, output: Output = None) -> None:
    """The rows that were not queued, as CSV: line, column, code, message, duplicate_of."""
    with gateway() as gw:
        gw.batches.exists(batch_id)
        rows = gw.batches.all_errors(batch_id)
        _write(csv_chunks(rows, ERROR_COLUMNS), output)
