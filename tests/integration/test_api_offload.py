"""The API keeps answering while the store is slow (issue 14): store calls of async
handlers run off the event loop when the store offloads (PostgreSQL), concurrent
submits share one commit (group commit) and each request still gets its own answer.

The stores here are the real ones (both backends) behind :class:`HeldStore`, which
answers on threads (``offload``) and can hold one call on a ``threading.Event`` until
the test lets it go: no sleeps, explicit synchronisation only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from callgate import auth
from callgate.api import create_app
from callgate.exceptions import IdempotencyConflict, StoreError
from callgate.gateway import Gateway
from callgate.grouped import commit_group
from callgate.store import Store, SubmitResult, open_store

OK = "+15005550006"
WAIT = 10.0  # seconds a test waits for an event before it fails (never slept)


class HeldStore:
    """A real store that answers on threads and holds the first call of ``hold`` that
    ``when(*args)`` picks until :attr:`release` is set (:attr:`entered`: it is held)."""

    offload = True

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.hold: str | None = None
        self.when: Callable[..., bool] = lambda *a, **kw: True
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: dict[str, list[int]] = {}  # name -> the threads it ran on
        self.fail: dict[str, Exception] = {}  # name -> raise this (once) instead

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.setdefault(name, []).append(threading.get_ident())
            if name in self.fail:
                raise self.fail.pop(name)
            if name == self.hold and not self.entered.is_set() and self.when(*args, **kwargs):
                self.entered.set()
                assert self.release.wait(WAIT), "the test never released the held call"
            return attr(*args, **kwargs)

        return call


@pytest.fixture
def held(make_settings: Any) -> Iterator[tuple[Gateway, HeldStore, str]]:
    settings = make_settings()
    store = HeldStore(open_store(settings.database_url))
    gw = Gateway(settings, store=store)  # type: ignore[arg-type]
    _, token = auth.create_key(store, "test", time.time())  # type: ignore[arg-type]
    yield gw, store, token
    store.release.set()
    gw.close()


@asynccontextmanager
async def client(gw: Gateway, token: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(gw))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://cg", headers=headers) as c:
        yield c


async def until(event: threading.Event) -> None:
    """Wait for a thread's event without blocking the loop."""
    assert await asyncio.to_thread(event.wait, WAIT), "it never happened"


def sms(i: int, **more: Any) -> dict[str, Any]:
    return {"to": OK, "body": f"message {i}", **more}


# -- a slow store call delays nobody else -------------------------------------------------


def test_a_held_submit_does_not_delay_other_requests(held: tuple[Gateway, HeldStore, str]) -> None:
    gw, store, token = held
    store.hold = "submit"
    store.when = lambda specs, *a, **kw: any(s.payload.get("body") == "slow" for s in specs)

    async def main() -> None:
        async with client(gw, token) as c:
            slow = asyncio.create_task(c.post("/v1/messages", json={"to": OK, "body": "slow"}))
            await until(store.entered)
            answers = await asyncio.gather(
                *(c.post("/v1/messages", json=sms(i)) for i in range(8)),
                c.get("/v1/jobs"),
                c.get("/readyz"),
            )
            assert [r.status_code for r in answers] == [202] * 8 + [200, 200]
            assert not slow.done()  # answered while the slow one was still held
            store.release.set()
            r = await slow
            assert r.status_code == 202, r.text
            assert r.json()["payload"]["body"] == "slow"
        ids = {a.json()["id"] for a in answers[:8]} | {r.json()["id"]}
        assert len(ids) == 9

    asyncio.run(main())


def test_a_held_key_look_up_does_not_delay_other_requests(
    held: tuple[Gateway, HeldStore, str],
) -> None:
    gw, store, token = held
    _, other = auth.create_key(store, "other", time.time())  # type: ignore[arg-type]
    slow_hash = auth.hash_token(other)
    store.hold = "api_key_by_hash"
    store.when = lambda token_hash: token_hash == slow_hash

    async def main() -> None:
        async with client(gw, token) as c:
            headers = {"Authorization": f"Bearer {other}"}
            slow = asyncio.create_task(c.post("/v1/messages", json=sms(0), headers=headers))
            await until(store.entered)
            answers = await asyncio.gather(
                *(c.post("/v1/messages", json=sms(i)) for i in range(10))
            )
            assert [r.status_code for r in answers] == [202] * 10
            assert not slow.done()
            store.release.set()
            assert (await slow).status_code == 202
        loop_thread = threading.get_ident()
        assert loop_thread not in store.calls["api_key_by_hash"]  # never on the loop
        assert loop_thread not in store.calls["submit"]

    asyncio.run(main())


def test_every_store_call_of_a_handler_runs_off_the_loop(
    held: tuple[Gateway, HeldStore, str],
) -> None:
    gw, store, token = held

    async def main() -> None:
        async with client(gw, token) as c:
            job = (await c.post("/v1/messages", json=sms(1))).json()
            for method, url in [
                ("GET", f"/v1/jobs/{job['id']}"),
                ("GET", "/v1/jobs"),
                ("POST", f"/v1/jobs/{job['id']}/cancel"),
                ("POST", f"/v1/jobs/{job['id']}/retry"),
                ("GET", "/v1/breaker"),
                ("GET", "/v1/providers"),
                ("GET", "/v1/suppressions"),
                ("GET", "/v1/allowlist"),
                ("GET", "/v1/webhook-deliveries"),
                ("GET", "/readyz"),
            ]:
                r = await c.request(method, url)
                assert r.status_code == 200, (url, r.text)

    store.calls.clear()  # the fixture's own (making the key)
    asyncio.run(main())
    on_loop = {name for name, threads in store.calls.items() if threading.get_ident() in threads}
    assert not on_loop
    assert {"get_job", "attempts", "list_jobs", "cancel", "retry", "ping"} <= store.calls.keys()


def test_the_real_store_offloads_on_postgres_only(backend: str, make_settings: Any) -> None:
    with Gateway(make_settings()) as gw:
        assert repr(gw.db) == f"StoreCalls(offload={backend == 'postgres'})"


# -- group commit -------------------------------------------------------------------------


def test_concurrent_submits_share_one_commit(held: tuple[Gateway, HeldStore, str]) -> None:
    gw, store, _ = held

    async def main() -> list[SubmitResult]:
        specs = [gw.spec("sms", to=OK, body=f"m{i}") for i in range(20)]
        return await asyncio.gather(*(gw.submit_async(s, scope="k") for s in specs))

    results = asyncio.run(main())
    assert len({r.job.id for r in results}) == 20
    assert all(r.created for r in results)
    assert [r.job.payload["body"] for r in results] == [f"m{i}" for i in range(20)]
    assert len(store.calls["submit"]) == 1  # one transaction for the twenty
    assert gw._submits is not None
    assert (gw._submits.groups, gw._submits.items) == (1, 20)


def test_idempotency_within_one_group(held: tuple[Gateway, HeldStore, str]) -> None:
    gw, _store, _ = held
    first = gw.submit(gw.spec("sms", to=OK, body="before", idempotency_key="old"), scope="k")

    async def main() -> list[SubmitResult | BaseException]:
        specs = [
            gw.spec("sms", to=OK, body="a", idempotency_key="new"),
            gw.spec("sms", to=OK, body="a", idempotency_key="new"),  # the same again
            gw.spec("sms", to=OK, body="b", idempotency_key="new"),  # another request
            gw.spec("sms", to=OK, body="before", idempotency_key="old"),  # seen before
            gw.spec("sms", to=OK, body="changed", idempotency_key="old"),  # reused
            gw.spec("sms", to=OK, body="plain"),
            gw.spec("sms", to=OK, body="a", idempotency_key="new"),  # another key's scope
        ]
        scopes = ["k"] * 6 + ["other"]
        submits = (gw.submit_async(s, scope=k) for s, k in zip(specs, scopes, strict=True))
        return await asyncio.gather(*submits, return_exceptions=True)

    a, again, b, old, reused, plain, scoped = asyncio.run(main())
    assert isinstance(a, SubmitResult)
    assert a.created
    assert isinstance(again, SubmitResult)
    assert not again.created
    assert again.job.id == a.job.id
    assert isinstance(b, IdempotencyConflict)
    assert isinstance(old, SubmitResult)
    assert not old.created
    assert old.job.id == first.job.id
    assert isinstance(reused, IdempotencyConflict)
    assert isinstance(plain, SubmitResult)
    assert plain.created
    assert isinstance(scoped, SubmitResult)
    assert scoped.created
    assert scoped.job.id != a.job.id
    assert len({a.job.id, plain.job.id, scoped.job.id, first.job.id}) == 4


def test_one_bad_request_in_a_group_fails_alone_over_http(
    held: tuple[Gateway, HeldStore, str],
) -> None:
    gw, _, token = held

    async def main() -> list[httpx.Response]:
        async with client(gw, token) as c:
            await c.post("/v1/messages", json=sms(0), headers={"Idempotency-Key": "k1"})
            return await asyncio.gather(
                *(c.post("/v1/messages", json=sms(i)) for i in range(1, 5)),
                c.post("/v1/messages", json=sms(9), headers={"Idempotency-Key": "k1"}),
                c.post("/v1/messages", json=sms(0), headers={"Idempotency-Key": "k1"}),
                c.post("/v1/messages", json={"to": "not a number", "body": "x"}),
                c.post("/v1/messages", json=sms(5)),
            )

    *ok, conflict, replay, invalid, last = asyncio.run(main())
    assert [r.status_code for r in [*ok, last]] == [202] * 5
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"]["field"] == "idempotency_key"
    assert replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert invalid.status_code == 400
    assert invalid.json()["error"]["field"] == "to"
    assert len({r.json()["id"] for r in [*ok, last]}) == 5


def test_a_group_that_may_have_committed_is_not_stored_again() -> None:
    """A connection lost during the commit: the group may be stored; storing each again
    could make it twice, so each request gets the error (a 503), as alone."""
    calls: list[int] = []
    lost = StoreError("the database is unavailable (connection lost)")
    lost.maybe_committed = True

    def submit_many(specs: Any, scope: str) -> list[SubmitResult]:
        calls.append(len(specs))
        raise lost

    out = commit_group(submit_many, [(object(), "k")] * 3)  # type: ignore[list-item]
    assert out == [lost, lost, lost]
    assert calls == [3]


def test_a_failed_group_is_stored_one_by_one() -> None:
    calls: list[list[str]] = []
    bad = IdempotencyConflict("reused", field="idempotency_key")

    def submit_many(specs: Any, scope: str) -> list[Any]:
        calls.append(list(specs))
        if "bad" in specs:
            raise bad
        return [f"job {s}" for s in specs]

    out = commit_group(submit_many, [("a", "k"), ("bad", "k"), ("c", "k"), ("d", "j")])  # type: ignore[list-item]
    assert out == ["job a", bad, "job c", "job d"]
    assert calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"], ["d"]]


def test_a_store_error_reaches_each_request(held: tuple[Gateway, HeldStore, str]) -> None:
    gw, store, token = held
    store.fail["submit"] = StoreError("the database is unavailable (test)")

    async def main() -> httpx.Response:
        async with client(gw, token) as c:
            return await c.post("/v1/messages", json=sms(1))

    r = asyncio.run(main())
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "store_error"
