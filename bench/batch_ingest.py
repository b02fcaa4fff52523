"""Batch ingest: generate a CSV of N rows (Twilio's To,From,Body columns), accept it
through ``Gateway.submit_batch`` (streamed, validated, deduplicated, inserted in chunks)
and report the time to accept it and the peak RSS. Targets: 1,000,000 rows in ≤ 30 s
and ≤ 300 MB."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, peak_rss_mb

from callgate.config import Settings
from callgate.gateway import Gateway


def write_csv(path: str, rows: int, numbers: int) -> None:
    with open(path, "w", newline="") as f:
        f.write("To,From,Body\n")
        for n in range(rows):
            f.write(
                f"+1500555{n % numbers:04d},+15005550006,Your ballot request {n} was received.\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--numbers", type=int, default=10_000, help="distinct destinations")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "batch.csv")
        start = time.perf_counter()
        write_csv(path, args.rows, min(args.numbers, 10_000))
        generated = time.perf_counter() - start
        url = args.database_url or f"sqlite:///{os.path.join(tmp, 'bench.db')}"
        gw = Gateway(Settings(database_url=url, environment="development"))
        try:
            start = time.perf_counter()
            with open(path, "rb") as stream:
                batch = gw.submit_batch(stream, filename="batch.csv", rate=200)
            accepted = time.perf_counter() - start
        finally:
            gw.close()
        emit(
            {
                "rows": args.rows,
                "file_mb": round(os.path.getsize(path) / 1e6, 1),
                "generate_s": round(generated, 2),
                "accept_s": round(accepted, 2),
                "rows_per_s": round(args.rows / accepted),
                "queued_rows": batch.queued_rows,
                "invalid_rows": batch.invalid_rows,
                "duplicate_rows": batch.duplicate_rows,
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "target_accept_s": 30,
                "target_peak_rss_mb": 300,
            }
        )


if __name__ == "__main__":
    main()
