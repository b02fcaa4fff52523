"""``/v1/batches`` over HTTP: uploads (multipart and plain bodies), the Twilio sample
files, the error report, strict rejection, results with one row per input row."""

from __future__ import annotations

import csv
import io
import json

from callgate.exceptions import NotFound
from tests.integration.test_api import Api, MakeApi, api, error, fake_dns, make_api

__all__ = ["api", "fake_dns", "make_api"]  # fixtures

TWILIO_CSV = (
    b"To,From,Body\n"
    b"+15005550006,+15005550006,Your ballot request was received.\n"
    b"+15005550001,+15005550006,This row fails: invalid number (21211).\n"
    b"+15005550004,+15005550006,This row fails: unsubscribed recipient (21610).\n"
)
TWILIO_JSON = b"""{"messages": [
  {"To": "+15005550006", "From": "+15005550006", "Body": "Your ballot request was received."},
  {"To": "+15005550009", "From": "+15005550006", "Body": "This row fails: not SMS-capable."}
]}
"""
BAD = (
    b"To,Body,MediaUrl\n+15005550006,hi,\nnope,hi,\n+15005550007,hi,http://internal.example/a.png\n"
)


def upload(api: Api, data: bytes, filename: str = "rows.csv", **form: str) -> dict[str, object]:
    r = api.post("/v1/batches", files={"file": (filename, data)}, data=form)
    assert r.status_code == 202, r.text
    body: dict[str, object] = r.json()
    assert r.headers["location"] == f"/v1/batches/{body['id']}"
    return body


def test_twilio_sample_csv_upload_is_queued_and_reported(api: Api) -> None:
    batch = upload(api, TWILIO_CSV, "twilio-bulk.csv", rate="5", name="ballots")
    assert batch["status"] == "running"
    assert (batch["queued_rows"], batch["invalid_rows"], batch["rate"]) == (3, 0, 5.0)
    assert batch["counts"] == {"queued": 3}
    got = api.get(f"/v1/batches/{batch['id']}").json()
    assert got["name"] == "ballots"


def test_twilio_sample_json_body(api: Api) -> None:
    r = api.post(
        "/v1/batches?rate=2", content=TWILIO_JSON, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 202, r.text
    assert r.json()["queued_rows"] == 2


def test_bad_rows_are_reported_with_line_and_column(api: Api) -> None:
    batch = upload(api, BAD)
    assert (batch["queued_rows"], batch["invalid_rows"]) == (1, 2)
    report = api.get(f"/v1/batches/{batch['id']}/errors").json()
    assert [(e["line"], e["column"], e["code"]) for e in report["data"]] == [
        (3, "To", "invalid_phone_number"),
        (4, "MediaUrl", "unsafe_url"),
    ]
    assert report["next_cursor"] is None
    r = api.get(f"/v1/batches/{batch['id']}/errors?format=csv")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["line"] for row in rows] == ["3", "4"]


def test_strict_rejects_the_whole_batch(api: Api) -> None:
    r = api.post("/v1/batches", files={"file": ("rows.csv", BAD)}, data={"strict": "true"})
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["code"] == "batch_rejected"
    assert body["error"]["field"] == "To"
    assert body["invalid_rows"] == 2
    assert [e["line"] for e in body["errors"]] == [3, 4]
    assert api.gw.store.counts().get("queued", 0) == 0
    try:
        api.gw.store.get_batch(1)
        raise AssertionError("a rejected batch must not be stored")
    except NotFound:
        pass


def test_upload_errors_are_json(api: Api) -> None:
    error(
        api.post("/v1/batches", data={"kind": "sms"}, files={"x": ("a", b"")}),
        400,
        "missing_field",
        "file",
    )
    error(api.post("/v1/batches", files={"file": ("a.csv", b"")}), 400, "no_header", "file")
    error(api.post("/v1/batches", files={"file": ("a.csv", b"to\n")}), 400, "empty_batch", "file")
    error(
        api.post("/v1/batches", files={"file": ("a.csv", TWILIO_CSV)}, data={"rate": "x"}),
        400,
        "invalid_request",
        "rate",
    )
    error(
        api.post("/v1/batches", files={"file": ("a.csv", TWILIO_CSV)}, data={"kind": "pigeon"}),
        400,
        "invalid_request",
        "kind",
    )
    error(
        api.post("/v1/batches", content=b"nope", headers={"Content-Type": "application/json"}),
        400,
        "invalid_json",
    )
    error(api.get("/v1/batches/999"), 404, "not_found")
    error(
        api.post("/v1/batches", files={"file": ("a.csv", TWILIO_CSV)}, token=None),
        401,
        "unauthorized",
    )


def test_results_export_has_one_row_per_input_row(api: Api) -> None:
    data = (
        TWILIO_CSV
        + b"nope,+15005550006,bad\n+15005550006,+15005550006,Your ballot request was received.\n"
    )
    batch = upload(api, data)
    api.work()
    r = api.get(f"/v1/batches/{batch['id']}/results?format=csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["line"] for row in rows] == ["2", "3", "4", "5", "6"]
    assert [row["status"] for row in rows] == [
        "delivered",
        "failed",
        "failed",
        "invalid",
        "duplicate",
    ]
    assert rows[0]["provider_sid"]
    assert rows[1]["error_code"] == "21211"
    assert rows[4]["job_id"] == rows[0]["job_id"]
    lines = [
        json.loads(x)
        for x in api.get(f"/v1/batches/{batch['id']}/results?format=jsonl").text.splitlines()
    ]
    assert [x["line"] for x in lines] == [2, 3, 4, 5, 6]
    assert lines[0]["attempts"] == 1
    done = api.get(f"/v1/batches/{batch['id']}").json()
    assert done["counts"] == {"delivered": 1, "failed": 2}


def test_json_lines_body(make_api: MakeApi) -> None:
    api = make_api()
    body = b'{"to": "+15005550006", "media_url": "https://example.org/a.pdf"}\n'
    r = api.post(
        "/v1/batches?kind=fax", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "fax"


def test_pause_resume_cancel(api: Api) -> None:
    data = b"to,body\n" + b"".join(b"+1500555%04d,hi\n" % n for n in range(6, 16))
    batch = upload(api, data)
    base = f"/v1/batches/{batch['id']}"
    paused = api.post(f"{base}/pause").json()
    assert paused["status"] == "paused"
    assert paused["counts"] == {"held": 10}
    assert {j.reason for j in api.gw.store.list_jobs()} == {"batch_paused"}
    error(api.post(f"{base}/pause"), 409, "invalid_state")
    resumed = api.post(f"{base}/resume").json()
    assert (resumed["status"], resumed["counts"]) == ("running", {"queued": 10})
    canceled = api.post(f"{base}/cancel").json()
    assert (canceled["status"], canceled["counts"]) == ("canceled", {"canceled": 10})
    error(api.post(f"{base}/resume"), 409, "invalid_state")
    error(api.post("/v1/batches/99/cancel"), 404, "not_found")
    rows = list(csv.DictReader(io.StringIO(api.get(f"{base}/results").text)))
    assert len(rows) == 10
    assert {r["status"] for r in rows} == {"canceled"}
