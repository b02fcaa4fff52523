"""The client's batch methods against a mock transport: the upload's form, paging the
error report, streaming the results export, errors mapped to exceptions."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest

from callgate.client import AsyncClient, Client
from callgate.exceptions import NotFound, ValidationError


def handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/v1/batches" and request.method == "POST":
        body = request.read()
        assert b'name="file"; filename="rows.csv"' in body
        assert b'name="rate"\r\n\r\n5' in body
        assert b'name="strict"\r\n\r\ntrue' in body
        if b"bad" in body:
            err = {"code": "batch_rejected", "message": "1 invalid row(s)", "field": "To"}
            return httpx.Response(400, json={"error": err, "invalid_rows": 1, "errors": []})
        return httpx.Response(202, json={"id": 3, "status": "running"})
    if path == "/v1/batches/3/errors":
        cursor = request.url.params.get("cursor")
        page = [{"line": 5}] if cursor else [{"line": 3}]
        return httpx.Response(200, json={"data": page, "next_cursor": None if cursor else "3"})
    if path == "/v1/batches/3/results":
        assert request.url.params["format"] == "jsonl"
        return httpx.Response(200, content=b'{"line":2}\n{"line":3}\n')
    if path == "/v1/batches/3/pause":
        return httpx.Response(200, json={"id": 3, "status": "paused"})
    err = {"code": "not_found", "message": "no batch", "field": "id"}
    return httpx.Response(404, json={"error": err})


@pytest.fixture
def client() -> Client:
    return Client("http://cg", "key", transport=httpx.MockTransport(handler))


def test_submit_and_steer(client: Client) -> None:
    data = io.BytesIO(b"To,Body\n+15005550006,hi\n")
    batch = client.submit_batch(data, rate=5, strict=True, filename="rows.csv")
    assert batch == {"id": 3, "status": "running"}
    assert client.pause_batch(3)["status"] == "paused"
    with pytest.raises(NotFound):
        client.get_batch(4)
    with pytest.raises(ValidationError) as info:
        client.submit_batch(io.BytesIO(b"To\nbad\n"), rate=5, strict=True, filename="rows.csv")
    assert (info.value.code, info.value.field) == ("batch_rejected", "To")


def test_errors_are_paged_and_results_streamed(client: Client) -> None:
    assert [e["line"] for e in client.batch_errors(3)] == [3, 5]
    out = io.BytesIO()
    assert client.batch_results(3, out, format="jsonl") == len(out.getvalue())
    assert [json.loads(x)["line"] for x in out.getvalue().splitlines()] == [2, 3]


def test_the_async_client_does_the_same() -> None:
    async def main() -> None:
        async with AsyncClient("http://cg", "key", transport=httpx.MockTransport(handler)) as c:
            data = io.BytesIO(b"To,Body\n+15005550006,hi\n")
            batch = await c.submit_batch(data, rate=5, strict=True, filename="rows.csv")
            assert batch == {"id": 3, "status": "running"}
            assert (await c.pause_batch(3))["status"] == "paused"
            with pytest.raises(NotFound):
                await c.get_batch(4)
            with pytest.raises(ValidationError):
                await c.submit_batch(
                    io.BytesIO(b"To\nbad\n"), rate=5, strict=True, filename="rows.csv"
                )
            assert [e["line"] async for e in c.batch_errors(3)] == [3, 5]
            out = io.BytesIO()
            assert await c.batch_results(3, out, format="jsonl") == len(out.getvalue())
            assert out.getvalue().splitlines() == [b'{"line":2}', b'{"line":3}']
            with pytest.raises(NotFound):
                await c.batch_results(4, io.BytesIO())

    asyncio.run(main())
