"""``callgate export`` as a user runs it (issue 22): to a file and to an S3 bucket (moto's
server on 127.0.0.1, found by ``CALLGATE_S3_ENDPOINT_URL`` and the usual AWS variables),
and a clear one-line error for a bad destination or time, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from .support import Callgate, one_line

BUCKET = "callgate-cli-exports"


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, Any]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server._server.server_port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield url, client
    server.stop()


def test_export_jobs_to_a_file_and_to_s3(cg: Callgate, s3: tuple[str, Any]) -> None:
    for i in range(3):
        cg.ok("send", "sms", "--to", "+15005550006", "--body", f"hello {i}")
    out = cg.home / "jobs.jsonl"
    summary = cg.json("export", "jobs", "--to", str(out))
    assert summary["rows"] == 3
    assert [json.loads(line)["payload"]["body"] for line in out.read_text().splitlines()] == [
        "hello 0",
        "hello 1",
        "hello 2",
    ]
    url, client = s3
    env = {
        "CALLGATE_S3_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    args = ("export", "jobs", "--to", f"s3://{BUCKET}/nightly", "--format", "csv")
    summary = cg.json(*args, "--part-rows", "2", env=env)
    assert (summary["rows"], summary["parts"]) == (3, 2)
    body = client.get_object(Bucket=BUCKET, Key="nightly/jobs/part-000001.csv")["Body"].read()
    assert body.decode().splitlines()[0].startswith("id,kind,to,status")
    again = cg.json(*args, env=env)  # the same export again: nothing written twice
    assert again["already_done"] is True


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("export", "jobs", "--to", "s3:///x"), "invalid_request"),
        (("export", "jobs", "--since", "yesterday-ish"), "invalid_time"),
        (("export", "batch-results"), "invalid_request"),
        (("export", "batch-results", "--batch", "41"), "not_found"),
    ],
)
def test_bad_exports_get_one_line(cg: Callgate, args: tuple[str, ...], code: str) -> None:
    done = cg.run(*args)
    assert done.returncode == 1, done.stderr
    assert f"[{code}]" in one_line(done.stderr)
    assert "Traceback" not in done.stderr
