"""The seeds' workloads on a fresh install's defaults, with the real ``callgate`` command.

Two scenarios, each on a new SQLite database, nothing turned off (development, the
default account rate of 10/s, caps, quiet hours, the breaker), the allowlist one pattern
as a new user sets it, the numbers where it is daytime now:

* ``campaign``: ``callgate batch submit FILE --rate 50 --detach`` with ``--rows`` SMS rows,
  then ``callgate worker --drain``: how many were sent, and whether the breaker tripped;
* ``wrong_credentials``: ``callgate simulator`` over HTTP as Twilio, ``--jobs`` SMS, a
  ``worker --drain`` with a wrong auth token, then one with the right one: how many
  requests reached the provider while the token was wrong (its 401 answers in the audit
  log), and how many jobs were delivered once it was right.

``--code DIR`` runs the callgate commands from another checkout's ``src`` (the same
harness measures the code before a change):

    python bench/defaults.py [--rows 2000] [--jobs 20] [--code ../base/src] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit

from callgate.testing import PipeLines, daytime_numbers

SIM_SID, SIM_TOKEN = "ACsimulator", "simulator-auth-token"


def base_env(home: Path, code: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    if code:
        env["PYTHONPATH"] = code
    env["CALLGATE_DATABASE_URL"] = f"sqlite:///{home / 'callgate.db'}"
    env["CALLGATE_SIMULATOR_LOG"] = str(home / "sim.log")
    return env


def callgate(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callgate", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )


def query(db: Path, sql: str) -> list[Any]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def statuses(db: Path) -> dict[str, int]:
    return {s: n for s, n in query(db, "SELECT status, count(*) FROM jobs GROUP BY status")}


def campaign(rows: int, code: str | None) -> dict[str, Any]:
    numbers, pattern = daytime_numbers(rows, time.time())
    with tempfile.TemporaryDirectory(prefix="callgate-defaults-") as tmp:
        home = Path(tmp)
        env = base_env(home, code) | {"CALLGATE_ALLOWLIST": pattern}
        lines = "".join(f"{n},reminder {i}\n" for i, n in enumerate(numbers))
        (home / "campaign.csv").write_text("To,Body\n" + lines)
        submit = callgate(home, env, "batch", "submit", "campaign.csv", "--kind", "sms",
                          "--rate", "50", "--detach")  # fmt: skip
        assert submit.returncode == 0, submit.stderr
        start = time.perf_counter()
        drain = callgate(home, env, "worker", "--drain")
        seconds = time.perf_counter() - start
        db = home / "callgate.db"
        breaker = query(db, "SELECT open, detail FROM breaker WHERE name = 'global'")
        return {
            "rows": rows,
            "sent": query(db, "SELECT count(*) FROM attempts")[0][0],
            "jobs": statuses(db),
            "breaker_tripped": bool(breaker and breaker[0][0]),
            "breaker_detail": breaker[0][1] if breaker else None,
            "drain_exit": drain.returncode,
            "seconds": round(seconds, 1),
        }


def start_simulator(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "callgate", "simulator", "--port", "0"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = PipeLines(proc.stdout).wait_for(r"^\{.*\}$", 60, "the simulator's ready line")
    return proc, json.loads(line.group(0))["url"]


def wrong_credentials(jobs: int, code: str | None) -> dict[str, Any]:
    numbers, pattern = daytime_numbers(jobs, time.time())
    with tempfile.TemporaryDirectory(prefix="callgate-defaults-") as tmp:
        home = Path(tmp)
        env = base_env(home, code)
        sim, url = start_simulator(home, env)
        try:
            env |= {
                "CALLGATE_ALLOWLIST": pattern,
                "CALLGATE_PROVIDER_SMS": "twilio",
                "CALLGATE_TWILIO_ACCOUNT_SID": SIM_SID,
                "CALLGATE_TWILIO_FROM": "+15005550006",
                "CALLGATE_TWILIO_BASE_URL": url,
            }
            wrong = env | {"CALLGATE_TWILIO_AUTH_TOKEN": "not-the-token"}
            right = env | {"CALLGATE_TWILIO_AUTH_TOKEN": SIM_TOKEN}
            lines = "".join(f"{n},reminder {i}\n" for i, n in enumerate(numbers))
            (home / "jobs.csv").write_text("To,Body\n" + lines)
            callgate(home, wrong, "batch", "submit", "jobs.csv", "--kind", "sms", "--detach")
            start = time.perf_counter()
            callgate(home, wrong, "worker", "--drain")
            failing_seconds = time.perf_counter() - start
            db = home / "callgate.db"
            refused = query(db, "SELECT count(*) FROM audit_log WHERE status = 401")[0][0]
            after_failing = statuses(db)
            callgate(home, right, "worker", "--drain")
            return {
                "jobs": jobs,
                "requests_while_failing": refused,
                "jobs_after_failing": after_failing,
                "failing_drain_seconds": round(failing_seconds, 1),
                "delivered_after_fix": statuses(db).get("delivered", 0),
                "jobs_after_fix": statuses(db),
            }
        finally:
            sim.terminate()
            sim.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--code", help="run the callgate commands from this src directory")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 30 rows, 5 jobs")
    args = parser.parse_args()
    rows, jobs = (30, 5) if args.quick else (args.rows, args.jobs)
    emit(
        {
            "code": args.code or "this checkout",
            "campaign": campaign(rows, args.code),
            "wrong_credentials": wrong_credentials(jobs, args.code),
        }
    )


if __name__ == "__main__":
    main()
