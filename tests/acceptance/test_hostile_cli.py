"""Hostile input at the command line (issue 15): each case answered with one line and a
usage or validation exit (2 or 1), never ``internal error`` (exit 70), a crash, a stored
half-batch or a read that never ends."""

from __future__ import annotations

import pytest

from .support import Callgate

CSV = "To,Body\n+15005550006,hi\n"
BEYOND = str(2**63)  # one past the largest id either store can hold


def no_batch(cg: Callgate) -> None:
    assert cg.json("jobs", "list") == []


@pytest.mark.parametrize("rate", ["inf", "1e400", "nan", "1e-300", "0", "-5", "1e9"])
def test_batch_submit_refuses_a_poison_rate(cg: Callgate, rate: str) -> None:
    path = cg.home / "rows.csv"
    path.write_text(CSV)
    done = cg.run("batch", "submit", str(path), "--rate", rate, "--detach")
    assert done.returncode in (1, 2), done.stderr
    assert "internal error" not in done.stderr
    assert "rate" in done.stderr
    no_batch(cg)


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "show", BEYOND],
        ["jobs", "cancel", BEYOND],
        ["jobs", "retry", "-1"],
        ["batch", "show", BEYOND],
        ["batch", "results", BEYOND],
        ["webhooks", "replay", BEYOND],
        ["audit", "prune", "--older-than", "-5"],
        ["audit", "prune", "--older-than", "nan"],
    ],
)
def test_numbers_beyond_their_range_are_usage_errors(cg: Callgate, args: list[str]) -> None:
    done = cg.run(*args)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "internal error" not in done.stderr


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 201])
def test_keys_create_refuses_an_empty_or_odd_name(cg: Callgate, name: str) -> None:
    done = cg.run("keys", "create", "--name", name)
    assert done.returncode == 1, done.stderr
    assert "[invalid_request] (field: name)" in done.stderr
    assert cg.json("keys", "list") == []


def test_batch_submit_refuses_an_empty_name(cg: Callgate) -> None:
    path = cg.home / "rows.csv"
    path.write_text(CSV)
    done = cg.run("batch", "submit", str(path), "--name", "", "--detach")
    assert done.returncode == 1, done.stderr
    assert "(field: name)" in done.stderr
    no_batch(cg)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_batch_submit_of_an_endless_file_is_refused_at_once(cg: Callgate, path: str) -> None:
    done = cg.run("batch", "submit", path, "--detach", timeout=30)
    assert done.returncode == 1, done.stderr
    assert "not a regular file" in done.stderr
    no_batch(cg)


def test_an_unwritable_output_path_is_one_line_exit_1(cg: Callgate) -> None:
    path = cg.home / "rows.csv"
    path.write_text(CSV)
    batch = cg.ok("batch", "submit", str(path), "--detach").strip()
    for output in (str(cg.home), str(cg.home / "missing" / "out.csv")):
        done = cg.run("batch", "results", batch, "-o", output)
        assert done.returncode == 1, done.stderr
        assert "(field: output)" in done.stderr
        assert "internal error" not in done.stderr


@pytest.mark.parametrize("number", ["+1500555ABCD", "+15005550187;ext=12", "+١٥٠٠٥٥٥٠٠٠٦"])
def test_send_refuses_a_number_that_is_not_plain_e164(cg: Callgate, number: str) -> None:
    done = cg.run("send", "sms", "--to", number, "--body", "hi")
    assert done.returncode == 1, done.stderr
    assert "[invalid_phone_number]" in done.stderr
    no_batch(cg)


def test_a_job_row_the_worker_cannot_read_is_that_jobs_error(cg: Callgate) -> None:
    """Its payload is not JSON (edited by hand, or a bug): the job fails (``unreadable``)
    and the worker goes on sending the others."""
    import sqlite3

    bad = cg.json("send", "sms", "--to", "+15005550006", "--body", "hi")
    with sqlite3.connect(cg.db) as conn:
        conn.execute("UPDATE jobs SET payload = '{' WHERE id = ?", (bad["id"],))
    good = cg.json("send", "sms", "--to", "+15005550009", "--body", "hi")
    done = cg.run("worker", "--drain", timeout=60)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(cg.db) as conn:
        rows = dict(conn.execute("SELECT id, status || ' ' || coalesce(reason, '') FROM jobs"))
    assert rows[bad["id"]] == "failed unreadable"
    assert rows[good["id"]].startswith(("delivered", "failed permanent"))


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"]])
def test_a_worker_that_stops_on_an_error_takes_the_process_down_loudly(
    cg: Callgate, command: list[str]
) -> None:
    """The meter's own row is unreadable (no job or batch to blame): an error line with
    the traceback, and a non-zero exit instead of a process that idles, sending nothing."""
    import sqlite3
    import subprocess

    cg.json("send", "sms", "--to", "+15005550006", "--body", "hi")
    with sqlite3.connect(cg.db) as conn:
        conn.execute("UPDATE meter SET tat = 'x'")
    proc = cg.start(*command, env={"CALLGATE_RATE": "5"})  # a metered claim reads the row
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"callgate {command[0]} still running with a dead worker:\n{stderr}")
    assert proc.returncode == 1, stderr
    assert "the worker loop failed; the worker stops" in stderr
    assert "Traceback" in stderr
    assert "error [worker_failed]" in stderr
