"""Chaos scenarios of the public PostgreSQL job-queue benchmark
(hardbyte/postgresql-job-queue-benchmarking), run natively against callgate.

Each scenario starts from an empty database on a PostgreSQL cluster of this script's own
(never the shared server), a producer submitting at a fixed rate over 1,000 numbers, and
``callgate worker`` processes; it runs warm-up → baseline → fault → recovery, drains, and
judges: jobs lost, jobs sent twice, two calls to one number at once, seconds until the
throughput is back at 90 % of the baseline median, claim latency.

    python bench/chaos.py --json                 # the five scenarios, minutes each
    python bench/chaos.py --quick --json         # seconds each: the CI smoke test
    python bench/chaos.py --scenario backend_kill --quick
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _chaos_judge import (
    claim_latency,
    double_sends,
    judge_jobs,
    overlaps,
    per_second,
    read_calls,
    recovery_s,
    throughput,
)
from _chaos_pg import Cluster
from _chaos_run import (
    SIM_LATENCY,
    WORKER_ENV,
    OrphanWatch,
    Producer,
    Workers,
    start_sim,
    wait_drained,
)
from _common import emit

from callgate.store.postgres import PostgresStore

LEASE = float(WORKER_ENV["CALLGATE_LEASE"])
RECOVERY_TARGET = 10.0
P99_TARGET_MS = 50.0
IDLE_CROWD = 300


@dataclass(frozen=True)
class Timing:
    warmup: float
    baseline: float
    recovery: float
    fault: float  # the fault's length (a kill's, an idle crowd's, a backend-kill storm's)
    kill_every: float  # repeated_kills
    pg_pause: float  # postgres_restart: seconds the server is down
    drain: float


FULL = Timing(warmup=10, baseline=30, recovery=30, fault=60, kill_every=20, pg_pause=10, drain=120)
QUICK = Timing(warmup=3, baseline=5, recovery=6, fault=6, kill_every=3, pg_pause=3, drain=60)


@dataclass
class Stage:
    """What a fault needs: the cluster, the workers, the run's notes."""

    cluster: Cluster
    workers: Workers
    timing: Timing
    url: str
    notes: dict[str, Any]
    watches: list[OrphanWatch]

    def kill(self, slot: str) -> None:
        killed_at = time.monotonic()
        watch = OrphanWatch(self.url, self.workers.kill(slot), killed_at)
        watch.start()
        self.watches.append(watch)


def crash_recovery(stage: Stage) -> None:
    stage.kill("w2")
    time.sleep(stage.timing.fault)  # the scenario's fault: one worker down this long
    stage.workers.start("w2")


def repeated_kills(stage: Stage) -> None:
    rng = random.Random(18)
    rounds = round(stage.timing.fault * 2 / stage.timing.kill_every)
    for _ in range(rounds):  # 2 minutes of kills in the full run (fault × 2)
        slot = rng.choice(sorted(stage.workers.procs))
        stage.kill(slot)
        stage.workers.start(slot)
        time.sleep(stage.timing.kill_every)


def postgres_restart(stage: Stage) -> None:
    stage.cluster.stop()
    time.sleep(stage.timing.pg_pause)  # the outage itself
    stage.cluster.start()


def backend_kill(stage: Stage) -> None:
    end, killed = time.monotonic() + stage.timing.fault, 0
    while time.monotonic() < end:
        killed += stage.cluster.terminate_callgate()
        time.sleep(0.5)  # twice a second
    stage.notes["backends_terminated"] = killed


def pool_exhaustion(stage: Stage) -> None:
    with stage.cluster.idle_crowd(IDLE_CROWD) as held:
        stage.notes["idle_connections_held"] = len(held)
        stage.notes["connections_during"] = stage.cluster.connections()
        time.sleep(stage.timing.fault)  # the crowd stays this long


@dataclass(frozen=True)
class Scenario:
    name: str
    workers: int
    rate: float
    fault: Callable[[Stage], None]


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("crash_recovery", 2, 300, crash_recovery),
        Scenario("repeated_kills", 2, 300, repeated_kills),
        Scenario("postgres_restart", 1, 600, postgres_restart),
        Scenario("backend_kill", 1, 300, backend_kill),
        Scenario("pool_exhaustion", 1, 300, pool_exhaustion),
    )
}


def run(scenario: Scenario, timing: Timing) -> dict[str, Any]:
    cluster = Cluster()
    home = Path(tempfile.mkdtemp(prefix=f"callgate-chaos-{scenario.name}-"))
    url = cluster.url()
    PostgresStore(url).close()  # the schema, before anyone else connects
    sim = None
    env = {"CALLGATE_DATABASE_URL": url, **WORKER_ENV}
    if scenario.workers > 1:  # one record of every call for all workers: see docs
        sim, provider = start_sim(home)
        env |= provider
        log = sim.log
    else:
        log = home / "sim.log"
        env |= {"CALLGATE_SIMULATOR_LOG": str(log), "CALLGATE_SIMULATOR_LATENCY": str(SIM_LATENCY)}
    workers = Workers(home, {**clean_environ(), **env})
    producer = Producer(url, scenario.rate)
    stage = Stage(cluster, workers, timing, url, {}, [])
    try:
        for i in range(scenario.workers):
            workers.start(f"w{i + 1}")
        cluster.wait_for_clients(2 * scenario.workers)  # each: its pool and its listener
        producer.start()
        marks = {"start": time.time()}
        time.sleep(timing.warmup)  # phases are lengths of real time
        marks["baseline"] = time.time()
        time.sleep(timing.baseline)
        marks["fault"] = time.time()
        scenario.fault(stage)
        marks["recovery"] = time.time()
        time.sleep(timing.recovery)
        marks["end"] = time.time()
        producer.halt()
        drained = wait_drained(url, timing.drain)
        for watch in stage.watches:
            watch.join(30)
        alive = workers.alive()
        codes = workers.stop()
        if sim is not None:
            sim.stop()
        return judge(scenario, stage, producer, log, marks, drained, alive, codes)
    finally:
        producer.halt()
        workers.stop()
        if sim is not None:
            sim.stop()
        cluster.remove()
        shutil.rmtree(home, ignore_errors=True)


def clean_environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}


def judge(
    scenario: Scenario,
    stage: Stage,
    producer: Producer,
    log: Path,
    marks: dict[str, float],
    drained: dict[str, int],
    alive: bool,
    codes: list[int | None],
) -> dict[str, Any]:
    calls = read_calls(log)
    phases = {
        "warmup": (marks["start"], marks["baseline"]),
        "baseline": (marks["baseline"], marks["fault"]),
        "fault": (marks["fault"], marks["recovery"]),
        "recovery": (marks["recovery"], marks["end"]),
    }
    per_phase = throughput(calls, phases)
    base = per_phase["baseline"]["median_per_s"]
    with psycopg.connect(stage.cluster.url("chaos-judge"), autocommit=True) as conn:
        jobs = judge_jobs(conn, producer.accepted)
        sends = double_sends(conn, calls)
        latency = {
            name: claim_latency(conn, *phases[name]) for name in ("baseline", "fault", "recovery")
        }
    back = recovery_s(calls, marks["recovery"], marks["end"], base)
    settled = [w.settled_s for w in stage.watches]
    orphans = {
        "killed_workers": len(stage.watches),
        "orphaned_jobs": sum(w.jobs for w in stage.watches),
        "settled_max_s": None if None in settled else max(settled, default=0.0),
    }
    doc: dict[str, Any] = {
        "scenario": scenario.name,
        "workers": scenario.workers,
        "rate": scenario.rate,
        "jobs_lost": jobs["jobs_lost"],
        "double_sends": sends["double_sends"],
        "group_overlaps": overlaps(calls),
        "recovery_s": back,
        "per_second_from_baseline": per_second(calls, marks["baseline"], marks["end"]),
        "throughput": per_phase,
        "claim_latency_ms": latency,
        "jobs": jobs,
        "calls": len(calls),
        "calls_without_attempt": sends["calls_without_attempt"],
        "orphans": orphans,
        "drained": {k: v for k, v in drained.items() if v},
        "producer_retries": producer.errors,
        "worker_starts": stage.workers.starts,
        "workers_alive_at_end": alive,
        "worker_exit_codes": codes,
        "worker_tracebacks": stage.workers.crashed(),
        **stage.notes,
    }
    doc["guarantees_held"] = (
        doc["jobs_lost"] == 0
        and doc["double_sends"] == 0
        and doc["group_overlaps"] == 0
        and jobs["unexplained"] == 0
        and alive
    )
    p99 = latency["baseline"]["p99"]
    orphans_ok = orphans["settled_max_s"] is not None and orphans["settled_max_s"] <= LEASE + 2
    doc["passed"] = bool(
        doc["guarantees_held"]
        and back is not None
        and back <= RECOVERY_TARGET
        and p99 is not None
        and p99 < P99_TARGET_MS
        and (orphans_ok or not stage.watches)
    )
    return doc


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | lost | double sends | overlaps | recovery s | baseline / fault / "
        "recovery jobs/s | claim p50/p95/p99 ms (baseline) | passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t, lat = r["throughput"], r["claim_latency_ms"]["baseline"]
        rates = " / ".join(f"{t[p]['jobs_per_s']:.0f}" for p in ("baseline", "fault", "recovery"))
        lines.append(
            f"| `{r['scenario']}` | {r['jobs_lost']} | {r['double_sends']} | "
            f"{r['group_overlaps']} | {r['recovery_s']} | {rates} | "
            f"{lat['p50']} / {lat['p95']} / {lat['p99']} | {'yes' if r['passed'] else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds per phase (CI)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="only these (repeatable)"
    )
    args = parser.parse_args()
    # the producer's pool says every lost connection out loud; the workers' logs keep theirs
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    timing = QUICK if args.quick else FULL
    results = []
    for name in args.scenario or list(SCENARIOS):
        print(f"chaos: {name} ...", file=sys.stderr, flush=True)
        results.append(run(SCENARIOS[name], timing))
        r = results[-1]
        print(
            f"chaos: {name}: lost {r['jobs_lost']}, double sends {r['double_sends']}, "
            f"overlaps {r['group_overlaps']}, recovery {r['recovery_s']} s, "
            f"passed {r['passed']}",
            file=sys.stderr,
            flush=True,
        )
    doc = {
        "quick": args.quick,
        "timing": vars(timing) if hasattr(timing, "__dict__") else {},
        "scenarios": {r["scenario"]: r for r in results},
        "guarantees_held": all(r["guarantees_held"] for r in results),
        "passed": all(r["passed"] for r in results),
    }
    if args.json:
        emit(doc)
    else:
        print(table(results))
    with contextlib.suppress(Exception):
        sys.stdout.flush()


if __name__ == "__main__":
    main()
