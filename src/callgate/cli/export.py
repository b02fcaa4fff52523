"""``callgate export jobs|audit|batch-results``: streamed, resumable exports to standard
output, a file or an S3-compatible bucket (see :mod:`callgate.export`)."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated

import typer

from callgate.cli.common import JsonFlag, err, friendly, gateway, option_time, print_json


class What(StrEnum):
    jobs = "jobs"
    audit = "audit"
    batch_results = "batch-results"


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


commands = typer.Typer()


@commands.command()
@friendly
def export(
    what: Annotated[What, typer.Argument(help="jobs, audit or batch-results.")],
    since: Annotated[
        str | None, typer.Option(help="Jobs created / exchanges made from this time (ISO 8601).")
    ] = None,
    to: Annotated[
        str, typer.Option(help="-, a file, or s3://bucket/prefix (resumable: run it again).")
    ] = "-",
    fmt: Annotated[Format, typer.Option("--format", help="jsonl or csv.")] = Format.jsonl,
    batch: Annotated[int | None, typer.Option(help="The batch (batch-results).", min=1)] = None,
    part_rows: Annotated[
        int, typer.Option(help="Rows per part (a checkpoint after each).", min=1)
    ] = 50_000,
    as_json: JsonFlag = False,
) -> None:
    """Export jobs, the audit log or a batch's results, oldest first. An export to a
    file or a bucket that was cut off continues where it stopped when run again with
    the same arguments."""
    from callgate import export as ex

    start = option_time(since, "since")
    ts = None if start is None else start.timestamp()
    with gateway() as gw:
        dest = ex.destination(to, what.value, fmt.value, gw.settings.s3_endpoint_url)
        wanted = ex.Checkpoint(what.value, ts, fmt.value, batch)
        result = ex.run(ex.source(gw, what.value, ts, batch), dest, wanted, part_rows=part_rows)
    if as_json:
        print_json(asdict(result))
        return
    if to != "-":
        how = (
            "already complete" if result.already_done else ("resumed" if result.resumed else "done")
        )
        err.print(
            f"exported {result.rows} {what.value} rows in {result.parts} parts to "
            f"{result.to} ({how})",
            markup=False,
            highlight=False,
        )
