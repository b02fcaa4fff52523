"""``callgate batch ...`` in a subprocess: submit a Twilio-sample file, watch it to the
end with a worker running, export results with one row per input row; --strict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .support import Callgate

TWILIO_CSV = (
    "To,From,Body\n"
    "+15005550006,+15005550006,Your ballot request was received.\n"
    "+15005550001,+15005550006,This row fails: invalid number (21211).\n"
    "+15005550004,+15005550006,This row fails: unsubscribed recipient (21610).\n"
)


def test_detached_batch_then_results_file(cg: Callgate) -> None:
    path = cg.home / "twilio-bulk.csv"
    path.write_text(TWILIO_CSV + "nope,+15005550006,bad row\n")
    done = cg.run("batch", "submit", str(path), "--rate", "50", "--detach")
    assert done.returncode == 0, done.stderr
    batch_id = int(done.stdout.strip())
    assert "1 invalid" in done.stderr
    assert cg.run("worker", "--drain").returncode == 0
    shown = cg.json("batch", "show", str(batch_id))
    assert shown["counts"] == {"delivered": 1, "failed": 2}
    assert shown["status"] == "completed"  # every row in, every job ended
    out = cg.home / "results.csv"
    cg.ok("batch", "results", str(batch_id), "-o", str(out))
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["line"] for r in rows] == ["2", "3", "4", "5"]
    assert [r["status"] for r in rows] == ["delivered", "failed", "failed", "invalid"]
    jsonl = cg.ok("batch", "results", str(batch_id), "--format", "jsonl")
    assert len(jsonl.splitlines()) == 4
    errors = cg.ok("batch", "errors", str(batch_id))
    assert errors.splitlines()[1].startswith("5,To,invalid_phone_number,")


def test_submit_waits_until_the_batch_is_done(cg: Callgate) -> None:
    path = cg.home / "twilio-bulk.json"
    path.write_text(
        json.dumps(
            {
                "messages": [
                    {"To": "+15005550006", "From": "+15005550006", "Body": f"m{n}"}
                    for n in range(5)
                ]
            }
        )
    )
    cg.start("worker")
    result = cg.json("batch", "submit", str(path), "--name", "spring")
    assert result["name"] == "spring"
    assert result["counts"] == {"delivered": 5}


def test_strict_rejects_with_line_numbers(cg: Callgate) -> None:
    path: Path = cg.home / "rows.csv"
    path.write_text(TWILIO_CSV + "nope,+15005550006,bad row\n")
    done = cg.run("batch", "submit", str(path), "--strict", "--detach")
    assert done.returncode == 1
    assert "line 5 column To: [invalid_phone_number]" in done.stderr
    assert "batch_rejected" in done.stderr
    assert "Traceback" not in done.stderr
    assert cg.jobs() == []
