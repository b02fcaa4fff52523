"""``callgate export`` (issue 22): jobs, the audit log and a batch's results, streamed in
parts to a file or an S3-compatible bucket (moto's server on 127.0.0.1), resumable after
a cut-off without a row twice or a row lost, on both backends."""

from __future__ import annotations

import csv
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from callgate import export as ex
from callgate.clock import ManualClock
from callgate.domain import Kind
from callgate.exceptions import NotFound, ValidationError
from callgate.gateway import Gateway

OK = "+15005550006"
BUCKET = "callgate-exports"


@pytest.fixture
def gw(make_settings: Any) -> Iterator[Gateway]:
    g = Gateway(make_settings())
    yield g
    g.close()


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


def submit(gw: Gateway, n: int) -> list[int]:
    return [gw.send(Kind.SMS, to=OK, body=f"message {i}").job.id for i in range(n)]


class CutOff:
    """A destination that fails while writing part ``at`` (a crash, a lost network)."""

    def __init__(self, inner: ex.Destination, at: int) -> None:
        self.inner, self.at = inner, at

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write_part(self, checkpoint: ex.Checkpoint, text: str) -> None:
        if checkpoint.parts == self.at:
            # half of the part reached the file before the crash
            if isinstance(self.inner, ex.LocalFile):
                with open(self.inner.partial, "ab") as f:
                    f.write(text.encode()[: len(text) // 2])
            raise OSError("cut off")
        self.inner.write_part(checkpoint, text)


def jobs_export(gw: Gateway, fmt: str = "jsonl") -> tuple[ex.Source, ex.Checkpoint]:
    return ex.source(gw, "jobs", None, None), ex.Checkpoint("jobs", None, fmt)


def test_jobs_to_a_file_in_parts(gw: Gateway, tmp_path: Path) -> None:
    ids = submit(gw, 7)
    dest = ex.LocalFile(tmp_path / "jobs.jsonl")
    source, wanted = jobs_export(gw)
    result = ex.run(source, dest, wanted, part_rows=3)
    assert (result.rows, result.parts, result.resumed) == (7, 3, False)
    rows = [json.loads(line) for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ids
    assert rows[0]["payload"] == {"body": "message 0"}
    assert rows[0]["status"] == "queued"
    assert not dest.partial.exists()
    assert not dest.checkpoint.exists()


def test_a_cut_off_file_export_resumes_without_a_row_twice(gw: Gateway, tmp_path: Path) -> None:
    ids = submit(gw, 10)
    source, wanted = jobs_export(gw)
    dest = ex.LocalFile(tmp_path / "jobs.jsonl")
    with pytest.raises(OSError, match="cut off"):
        ex.run(source, CutOff(dest, at=3), wanted, part_rows=4)  # type: ignore[arg-type]
    assert dest.load() is not None
    assert dest.load().parts == 2
    source, wanted = jobs_export(gw)
    result = ex.run(source, dest, wanted, part_rows=4)
    assert result.resumed
    assert result.rows == 10
    lines = (tmp_path / "jobs.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids  # the half part cut back


def test_since_exports_only_later_jobs(make_settings: Any, tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    gw = Gateway(make_settings(), clock=clock)
    try:
        submit(gw, 2)
        clock.advance(60)
        later = submit(gw, 2)
        since = clock.now()
        dest = ex.LocalFile(tmp_path / "later.jsonl")
        ex.run(ex.source(gw, "jobs", since, None), dest, ex.Checkpoint("jobs", since, "jsonl"))
    finally:
        gw.close()
    lines = (tmp_path / "later.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == later


def test_jobs_as_csv_to_s3_in_parts_and_a_resumed_run(gw: Gateway, s3: Any, backend: str) -> None:
    ids = submit(gw, 5)
    prefix = f"s3://{BUCKET}/exports/{backend}"
    source, wanted = jobs_export(gw, "csv")
    dest = ex.S3(prefix, "jobs", "csv", s3)
    with pytest.raises(OSError, match="cut off"):
        ex.run(source, CutOff(dest, at=2), wanted, part_rows=2)  # type: ignore[arg-type]
    source, wanted = jobs_export(gw, "csv")
    result = ex.run(source, dest, wanted, part_rows=2)
    assert (result.rows, result.parts, result.resumed) == (5, 3, True)
    base = f"exports/{backend}/jobs"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=base)["Contents"])
    parts = [k for k in keys if "/part-" in k]
    assert parts == [f"{base}/part-{n:06d}.csv" for n in (1, 2, 3)]
    got = []
    for key in parts:
        text = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        got += [int(r["id"]) for r in csv.DictReader(io.StringIO(text))]  # a header each
    assert got == ids
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{base}/_checkpoint.json")["Body"].read()
    )
    assert manifest["done"]
    assert manifest["rows"] == 5
    assert manifest["parts"] == 3
    source, wanted = jobs_export(gw, "csv")
    again = ex.run(source, dest, wanted)
    assert again.already_done
    assert again.rows == 5


def test_another_export_in_the_same_place_is_refused(gw: Gateway, tmp_path: Path) -> None:
    submit(gw, 3)
    dest = ex.LocalFile(tmp_path / "out.jsonl")
    source, wanted = jobs_export(gw)
    with pytest.raises(OSError, match="cut off"):
        ex.run(source, CutOff(dest, at=1), wanted, part_rows=1)  # type: ignore[arg-type]
    with pytest.raises(ex.ExportError, match="holds another export"):
        ex.run(source, dest, ex.Checkpoint("jobs", None, "csv"), part_rows=1)


def test_audit_and_batch_results(gw: Gateway, tmp_path: Path) -> None:
    batch = gw.submit_batch(io.BytesIO(b"To,Body\n+15005550006,hi\n+15005550006,ho\n"), kind="sms")
    dest = ex.LocalFile(tmp_path / "results.csv")
    ex.run(
        ex.source(gw, "batch-results", None, batch.id),
        dest,
        ex.Checkpoint("batch-results", None, "csv", batch.id),
    )
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert [r["line"] for r in rows] == ["2", "3"]
    audit = ex.LocalFile(tmp_path / "audit.jsonl")
    result = ex.run(ex.source(gw, "audit", 0.0, None), audit, ex.Checkpoint("audit", 0.0, "jsonl"))
    assert result.rows == 0  # nothing was sent: an empty export is still a file
    assert (tmp_path / "audit.jsonl").read_text() == ""


def test_bad_requests_are_refused_by_field(gw: Gateway) -> None:
    with pytest.raises(ValidationError) as e:
        ex.source(gw, "batch-results", None, None)
    assert e.value.field == "batch"
    with pytest.raises(NotFound):
        ex.source(gw, "batch-results", None, 999)
    with pytest.raises(ValidationError) as e:
        ex.destination("s3:///prefix", "jobs", "jsonl")
    assert e.value.field == "to"
    with pytest.raises(ValidationError) as e:
        ex.destination("ftp://host/x", "jobs", "jsonl")
    assert e.value.field == "to"


def test_an_unreachable_bucket_is_a_clear_error(gw: Gateway) -> None:
    submit(gw, 1)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    dest = ex.S3(f"s3://{BUCKET}/x", "jobs", "jsonl", client)
    source, wanted = jobs_export(gw)
    with pytest.raises(ex.ExportError, match="cannot reach"):
        ex.run(source, dest, wanted)
