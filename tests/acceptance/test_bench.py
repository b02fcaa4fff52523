"""The bench scripts still run and print the figures they promise (tiny sizes, no timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_bench(script: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


@pytest.mark.slow
def test_throughput_bench() -> None:
    doc = run_bench("throughput.py", "--jobs", "300", "--numbers", "30", "--raw-seconds", "0.2")
    assert doc["sent"] == 300
    assert {"process_jobs_per_s", "sqlite_raw_commits_per_s", "peak_rss_mb"} <= doc.keys()


@pytest.mark.slow
def test_metering_bench() -> None:
    doc = run_bench("metering.py", "--rate", "20", "--seconds", "2", "--numbers", "50")
    assert isinstance(doc["max_calls_in_1s_window"], int)
    assert doc["max_calls_in_1s_window"] <= 20
    assert doc["job_ids_called_twice"] == 0


@pytest.mark.slow
def test_scale_bench() -> None:
    doc = run_bench("scale.py", "--big", "3000", "--small", "300", "--repeat", "1")
    assert {"small_jobs_per_s", "big_jobs_per_s", "ratio_big_vs_small"} <= doc.keys()


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_scale_bench_with_history(database: str) -> None:
    args = ["--history", "2000", "--small", "200", "--repeat", "1"]
    if database == "postgresql":
        from tests import pg

        pg.require()
        args += ["--database", pg.admin_url()]
    doc = run_bench("scale.py", *args)
    assert (doc["database"], doc["mode"], doc["history"]) == (database, "history", 2000)
    big: dict[str, Any] = doc["submit_big"]  # type: ignore[assignment]
    assert (big["history"], big["queued"]) == (2000, 200)
    for run in doc["runs_small"] + doc["runs_big"]:  # type: ignore[operator]
        assert run["delivered"] >= 200


@pytest.mark.slow
def test_webhooks_bench() -> None:
    doc = run_bench("webhooks.py", "--events", "100", "--concurrency", "10")
    assert (doc["events"], doc["failed"]) == (100, 0)
    assert isinstance(doc["events_per_s"], int)


@pytest.mark.slow
def test_fax_line_bench() -> None:
    doc = run_bench(
        "fax_line.py", "--faxes", "3", "--fax-duration", "0.2", "--designs", "callbacks"
    )
    line: dict[str, float] = doc["callbacks"]  # type: ignore[assignment]
    assert line["faxes"] == 3
    # one fax at a time: the line cannot be busier than the faxes on it
    assert line["line_seconds"] >= line["fax_seconds"]
    assert {"ratio", "idle_gap_max_s", "submit_to_done_s"} <= line.keys()


@pytest.mark.slow
def test_batch_ingest_bench() -> None:
    doc = run_bench("batch_ingest.py", "--rows", "2000", "--numbers", "100")
    assert (doc["rows"], doc["queued_rows"], doc["invalid_rows"]) == (2000, 2000, 0)
    assert {"accept_s", "peak_rss_mb", "rows_per_s"} <= doc.keys()


@pytest.mark.slow
def test_batch_rate_bench() -> None:
    doc = run_bench("batch_rate.py", "--rows", "60", "--rate", "30")
    assert (doc["calls"], doc["batch_status"], doc["job_ids_called_twice"]) == (60, "completed", 0)
    assert doc["max_calls_in_1s_window"] <= 30
    assert {"achieved_rate_per_s", "steady_rate_per_s", "achieved_ratio"} <= doc.keys()


@pytest.mark.slow
def test_defaults_bench() -> None:
    doc = run_bench("defaults.py", "--quick")
    campaign: Any = doc["campaign"]
    assert (campaign["sent"], campaign["breaker_tripped"]) == (30, False)
    assert campaign["jobs"] == {"delivered": 30}
    wrong: Any = doc["wrong_credentials"]
    assert 1 <= wrong["requests_while_failing"] <= 5
    assert wrong["jobs_after_failing"] == {"held": 5}
    assert wrong["delivered_after_fix"] == 5


@pytest.mark.slow
def test_hostile_bench() -> None:
    """Every hostile upload is refused with its stable code, none of it stored, the
    server's memory hardly moves, and a slow DNS lookup does not hold /healthz."""
    doc: Any = run_bench("hostile.py", "--samples", "5")
    serve = doc["serve"]
    codes = {
        name: (case["status"], case["code"])
        for name, case in serve.items()
        if isinstance(case, dict)
    }
    assert codes == {
        "json_nested_100000": (400, "too_deep"),
        "jsonl_nested_20000_after_a_valid_row": (400, "too_deep"),
        "csv_line_2_mib": (400, "line_too_long"),
        "jsonl_5000_digit_number": (400, "invalid_number"),
    }
    assert serve["jobs_stored"] == 0
    assert serve["rss_peak_growth_mb"] < 200  # the old parser reached ~24 GB
    assert doc["healthz_with_5s_dns"]["samples"] == 5
    assert doc["healthz_with_5s_dns"]["max_ms"] < 2500  # not behind the 5 s lookup
