"""``callgate export``: jobs, the audit log or a batch's results, streamed, in JSON Lines
or CSV, to standard output, a local file or an S3-compatible bucket (issue 22).

Rows are read a page at a time by a cursor (a job's or an audit row's id, a batch row's
line) and written in *parts* of ``part_rows`` rows. After each part a checkpoint records
the cursor, the part count and the rows written, so an export cut off (a crash, a lost
connection) and started again with the same arguments continues after the last part it
finished, writing no row twice and losing none:

* to a file, the parts are appended to ``FILE.partial`` (the checkpoint,
  ``FILE.partial.checkpoint.json``, holds its size after the last whole part, and a
  resumed export first cuts the file back to that size); the finished file is renamed
  to ``FILE``;
* to ``s3://bucket/prefix``, each part is an object ``prefix/<what>/part-000001.jsonl``
  (or ``.csv``, each with its header) and the checkpoint is ``prefix/<what>/_checkpoint.json``,
  marked ``"done": true`` at the end (a manifest: the parts and the row count).

boto3 finds its credentials as usual (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
a profile, an instance role); ``CALLGATE_S3_ENDPOINT_URL`` points it at any
S3-compatible store (MinIO, Ceph, moto's server in the tests).
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from callgate.batches.export import RESULT_COLUMNS, csv_chunks, jsonl_chunks
from callgate.exceptions import CallgateError, ValidationError

if TYPE_CHECKING:
    from callgate.gateway import Gateway

WHATS = ("jobs", "audit", "batch-results")
FORMATS = ("jsonl", "csv")
PAGE = 1000

#: the CSV columns of a job (JSON Lines has the whole job, as ``GET /v1/jobs/{id}``)
JOB_COLUMNS = (
    "id",
    "kind",
    "to",
    "status",
    "attempts",
    "reason",
    "detail",
    "created_at",
    "updated_at",
    "batch_id",
    "idempotency_key",
)
AUDIT_COLUMNS = ("id", "job_id", "attempt", "at", "method", "url", "status", "duration", "error")


class ExportError(CallgateError):
    """The destination cannot be written (or read back), or holds another export."""

    code = "export_failed"


@dataclass
class Checkpoint:
    what: str
    since: float | None
    fmt: str
    batch_id: int | None = None
    after: int = 0  # the cursor after the last whole part
    parts: int = 0
    rows: int = 0
    size: int = 0  # a file's size after the last whole part
    done: bool = False

    def same_export(self, other: Checkpoint) -> bool:
        mine = (self.what, self.since, self.fmt, self.batch_id)
        return mine == (other.what, other.since, other.fmt, other.batch_id)


Fetch = Callable[[int, int], list[dict[str, Any]]]  # (after, limit) -> rows, in order


@dataclass(frozen=True)
class Source:
    fetch: Fetch
    cursor: str  # the row field that orders the rows and resumes after one
    columns: Sequence[str]


class Destination(Protocol):
    def load(self) -> Checkpoint | None: ...

    def write_part(self, checkpoint: Checkpoint, text: str) -> None:
        """Store part number ``checkpoint.parts`` (1-based) and update its size."""

    def save(self, checkpoint: Checkpoint) -> None: ...

    def finish(self, checkpoint: Checkpoint) -> None: ...

    def describe(self) -> str: ...


# -- destinations --------------------------------------------------------------------------


class Stdout:
    """Standard output: no checkpoint (nothing to resume)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout

    def load(self) -> Checkpoint | None:
        return None

    def write_part(self, checkpoint: Checkpoint, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()

    def save(self, checkpoint: Checkpoint) -> None:
        pass

    def finish(self, checkpoint: Checkpoint) -> None:
        pass

    def describe(self) -> str:
        return "-"


class LocalFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.checkpoint = path.with_name(path.name + ".partial.checkpoint.json")

    def load(self) -> Checkpoint | None:
        if not self.checkpoint.exists():
            return None
        return Checkpoint(**json.loads(self.checkpoint.read_text()))

    def write_part(self, checkpoint: Checkpoint, text: str) -> None:
        mode = "r+b" if self.partial.exists() else "wb"
        with open(self.partial, mode) as f:
            f.truncate(checkpoint.size)  # a part cut off last time is written again
            f.seek(checkpoint.size)
            f.write(text.encode())
            f.flush()
            os.fsync(f.fileno())
            checkpoint.size = f.tell()

    def save(self, checkpoint: Checkpoint) -> None:
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        tmp.write_text(json.dumps(asdict(checkpoint)))
        os.replace(tmp, self.checkpoint)

    def finish(self, checkpoint: Checkpoint) -> None:
        if not self.partial.exists():
            self.partial.write_bytes(b"")
        os.replace(self.partial, self.path)
        self.checkpoint.unlink(missing_ok=True)

    def describe(self) -> str:
        return str(self.path)


class S3:
    def __init__(self, url: str, what: str, fmt: str, client: Any) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValidationError(f"{url!r} names no bucket: s3://bucket/prefix", field="to")
        self.bucket, self.url = bucket, url
        self.base = "/".join(p for p in (prefix.strip("/"), what) if p)
        self.ext = fmt
        self._client = client

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if what == "read" and exc.response.get("Error", {}).get("Code") in (
                "NoSuchKey",
                "404",
            ):
                return None
            raise ExportError(
                f"cannot {what} s3://{self.bucket}/{kwargs.get('Key')}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise ExportError(f"cannot reach s3://{self.bucket}: {exc}") from exc

    def load(self) -> Checkpoint | None:
        got = self._call("read", self._client.get_object, Key=f"{self.base}/_checkpoint.json")
        return None if got is None else Checkpoint(**json.loads(got["Body"].read()))

    def write_part(self, checkpoint: Checkpoint, text: str) -> None:
        key = f"{self.base}/part-{checkpoint.parts:06d}.{self.ext}"
        self._call("write", self._client.put_object, Key=key, Body=text.encode())
        checkpoint.size += len(text.encode())

    def save(self, checkpoint: Checkpoint) -> None:
        body = json.dumps(asdict(checkpoint)).encode()
        self._call("write", self._client.put_object, Key=f"{self.base}/_checkpoint.json", Body=body)

    def finish(self, checkpoint: Checkpoint) -> None:
        self.save(checkpoint)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.base}/"


def source(gw: Gateway, what: str, since: float | None, batch_id: int | None) -> Source:
    """The rows of ``what`` (``jobs`` and ``audit`` from ``since`` on), in cursor order."""
    if what == "jobs":

        def jobs(after: int, limit: int) -> list[dict[str, Any]]:
            return [j.to_dict() for j in gw.jobs.after(after, created_after=since, limit=limit)]

        return Source(jobs, "id", JOB_COLUMNS)
    if what == "audit":
        start = since if since is not None else 0.0

        def audit(after: int, limit: int) -> list[dict[str, Any]]:
            return list(gw.guardrails.audit_since(start, after_id=after, limit=limit))

        return Source(audit, "id", AUDIT_COLUMNS)
    if batch_id is None:
        raise ValidationError("batch-results needs --batch ID", field="batch")
    gw.batches.exists(batch_id)  # NotFound for a batch that does not exist

    def results(after: int, limit: int) -> list[dict[str, Any]]:
        return gw.batches.results(batch_id, after_line=after, limit=limit)

    return Source(results, "line", RESULT_COLUMNS)


def destination(to: str, what: str, fmt: str, endpoint_url: str | None = None) -> Destination:
    if to == "-":
        return Stdout()
    if to.startswith("s3://"):
        import boto3  # type: ignore[import-untyped]

        return S3(to, what, fmt, boto3.client("s3", endpoint_url=endpoint_url or None))
    if "://" in to:
        raise ValidationError(f"{to!r}: expected a file, - or s3://bucket/prefix", field="to")
    return LocalFile(Path(to))


# -- the export --------------------------------------------------------------------------


@dataclass
class Result:
    what: str
    to: str
    rows: int
    parts: int
    resumed: bool
    already_done: bool = False


def run(
    source: Source,
    dest: Destination,
    wanted: Checkpoint,
    *,
    part_rows: int = 50_000,
) -> Result:
    """Export ``source`` to ``dest`` from where an earlier run of the same export
    stopped (its checkpoint), in parts of ``part_rows`` rows."""
    found = dest.load()
    if found is not None and not found.same_export(wanted):
        raise ExportError(
            f"{dest.describe()} holds another export ({found.what} since {found.since}, "
            f"{found.fmt}): choose another destination"
        )
    cp = found or wanted
    if cp.done:
        return Result(cp.what, dest.describe(), cp.rows, cp.parts, True, already_done=True)
    resumed = found is not None
    if not resumed:
        dest.save(cp)  # the destination is this export's from now on
    for rows in _parts(source, cp.after, part_rows):
        if not rows:
            break
        cp.parts += 1
        dest.write_part(cp, "".join(_render(rows, source.columns, cp.fmt)))
        cp.rows += len(rows)
        cp.after = int(rows[-1][source.cursor])
        dest.save(cp)
    cp.done = True
    dest.finish(cp)
    return Result(cp.what, dest.describe(), cp.rows, cp.parts, resumed)


def _parts(source: Source, after: int, part_rows: int) -> Iterator[list[dict[str, Any]]]:
    part: list[dict[str, Any]] = []
    while True:
        page = source.fetch(after, min(PAGE, part_rows))
        if not page:
            break
        for row in page:
            part.append(row)
            if len(part) == part_rows:
                yield part
                part = []
        after = int(page[-1][source.cursor])
    if part:
        yield part


def _render(rows: list[dict[str, Any]], columns: Sequence[str], fmt: str) -> Iterator[str]:
    if fmt == "csv":
        yield from csv_chunks(rows, columns)  # each part has its header
    elif columns is RESULT_COLUMNS:
        yield from jsonl_chunks(rows, columns)
    else:
        buffer = io.StringIO()
        for row in rows:
            buffer.write(json.dumps(row, separators=(",", ":"), default=str) + "\n")
        yield buffer.getvalue()
