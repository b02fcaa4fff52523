"""API keys from the command line: ``callgate keys create|list|revoke`` and the first key
``callgate serve`` makes on a new database. Real subprocesses, a fresh database each."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Iterator

import httpx
import pytest

from callgate import auth
from callgate.store.sqlite import SQLiteStore
from callgate.testing import ServeProcess

from .support import Callgate, one_line, query

STARTUP_TIMEOUT = 30.0


def authenticates(cg: Callgate, token: str) -> bool:
    store = SQLiteStore(str(cg.db))
    try:
        return auth.authenticate(store, token) is not None
    finally:
        store.close()


def test_create_with_json_prints_the_key_once(cg: Callgate) -> None:
    made = cg.json("keys", "create", "--name", "billing app")
    token = made["key"]
    assert re.fullmatch(r"cg_[A-Za-z0-9_-]{43}", token), token
    assert made["name"] == "billing app"
    assert made["id"].startswith("key_")
    assert made["prefix"] == token[:8]
    assert made["revoked_at"] is None
    assert made["created_at"]
    assert authenticates(cg, token)


def test_create_plain_prints_only_the_key_on_stdout(cg: Callgate) -> None:
    done = cg.run("keys", "create", "--name", "ops")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"cg_[A-Za-z0-9_-]{43}\n", done.stdout), done.stdout
    note = one_line(done.stderr)
    assert "shown only this once" in note
    assert authenticates(cg, done.stdout.strip())


def test_every_key_is_different(cg: Callgate) -> None:
    tokens = {cg.json("keys", "create", "--name", f"k{i}")["key"] for i in range(3)}
    assert len(tokens) == 3


def test_list_never_shows_a_key(cg: Callgate) -> None:
    made = [cg.json("keys", "create", "--name", name) for name in ("alpha", "beta")]
    listed = cg.json("keys", "list")
    assert [k["id"] for k in listed] == [m["id"] for m in made]
    assert [k["name"] for k in listed] == ["alpha", "beta"]
    assert all(set(k) == {"id", "name", "prefix", "created_at", "revoked_at"} for k in listed)
    plain = cg.ok("keys", "list")
    for m in made:
        assert m["key"] not in json.dumps(listed)
        assert m["key"] not in plain
        assert m["id"] in plain
        assert m["prefix"] in plain


def test_only_a_hash_of_the_key_is_stored(cg: Callgate) -> None:
    token = cg.json("keys", "create", "--name", "x")["key"]
    rows = query(cg.db, "SELECT * FROM api_keys")
    stored = " ".join(str(v) for row in rows for v in row)
    assert token not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored


def test_revoke(cg: Callgate) -> None:
    keep = cg.json("keys", "create", "--name", "keep")
    drop = cg.json("keys", "create", "--name", "drop")
    assert cg.ok("keys", "revoke", drop["id"]).strip() == f"revoked {drop['id']}"
    listed = {k["id"]: k for k in cg.json("keys", "list")}
    assert listed[drop["id"]]["revoked_at"] is not None
    assert listed[keep["id"]]["revoked_at"] is None
    assert not authenticates(cg, drop["key"])
    assert authenticates(cg, keep["key"])


@pytest.mark.parametrize("again", [True, False], ids=["revoked-twice", "unknown-id"])
def test_revoke_what_is_not_an_active_key_fails_in_one_line(cg: Callgate, again: bool) -> None:
    key_id = "key_000000000000"
    if again:
        key_id = cg.json("keys", "create", "--name", "x")["id"]
        cg.ok("keys", "revoke", key_id)
    done = cg.run("keys", "revoke", key_id)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "not_found" in line
    assert key_id in line


def test_create_needs_a_name(cg: Callgate) -> None:
    done = cg.run("keys", "create")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "--name" in done.stderr


# -- the first key, made by serve -------------------------------------------------------------


@pytest.fixture
def first(cg: Callgate) -> Iterator[tuple[ServeProcess, str]]:
    """A server started on a new database, and the first key it printed."""
    with ServeProcess.start(cwd=cg.home, env=cg.environ(), timeout=STARTUP_TIMEOUT) as server:
        assert server.key is not None
        yield server, server.key
        server.stop()


def test_serve_on_a_new_database_makes_a_first_key(
    cg: Callgate, first: tuple[ServeProcess, str]
) -> None:
    server, token = first
    assert "created the first API key" in server.stderr.text
    key_file = cg.home / "callgate.db.key"
    assert key_file.read_text() == token + "\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [k["name"] for k in cg.json("keys", "list")] == ["default"]
    headers = {"Authorization": f"Bearer {token}"}
    r = httpx.post(
        f"{server.url}/v1/messages",
        json={"to": "+15005550006", "body": "hi"},
        headers=headers,
        timeout=10,
    )
    assert r.status_code == 202, r.text
    assert httpx.get(f"{server.url}/v1/jobs", timeout=10).status_code == 401


def test_keys_made_and_revoked_by_the_cli_work_on_a_running_server(
    cg: Callgate, first: tuple[ServeProcess, str]
) -> None:
    server, _ = first
    made = cg.json("keys", "create", "--name", "late")
    headers = {"Authorization": f"Bearer {made['key']}"}
    assert httpx.get(f"{server.url}/v1/jobs", headers=headers, timeout=10).status_code == 200
    cg.ok("keys", "revoke", made["id"])
    r = httpx.get(f"{server.url}/v1/jobs", headers=headers, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


def test_serve_makes_no_new_key_when_keys_exist(cg: Callgate) -> None:
    cg.json("keys", "create", "--name", "mine")
    with ServeProcess.start(
        cwd=cg.home, env=cg.environ(), new_database=False, timeout=STARTUP_TIMEOUT
    ) as server:
        assert "first API key" not in server.stderr.text
        assert not (cg.home / "callgate.db.key").exists()
        assert [k["name"] for k in cg.json("keys", "list")] == ["mine"]
        server.stop()
    assert server.stdout.lines == []
