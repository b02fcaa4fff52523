"""The webhook sender's real network path (aiohttp) against a receiver on a local socket."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

from callgate.config import Settings
from callgate.gateway import Gateway
from callgate.testing import GUARDRAILS_OFF
from callgate.webhooks.signing import generate_secret


async def receiver(got: list[tuple[dict[str, str], bytes]]) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
        body = await reader.readexactly(int(headers["content-length"]))
        got.append((headers, body))
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_signed_webhook_over_a_real_socket(tmp_path: Path) -> None:
    secret = generate_secret()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/w.db",
        rate=0,
        webhook_secrets=secret,
        **GUARDRAILS_OFF,
    )
    got: list[tuple[dict[str, str], bytes]] = []
    dead = f"http://127.0.0.1:{closed_port()}/hooks"

    async def main() -> Gateway:
        server, port = await receiver(got)
        gw = Gateway(settings)
        gw.send("sms", to="+15005550006", body="hi", callback_url=f"http://127.0.0.1:{port}/h")
        gw.send("sms", to="+15005550001", body="x", callback_url=dead)
        await gw.run_worker(drain=True)
        sender = gw.webhook_sender()
        task = asyncio.create_task(sender.run())
        async with asyncio.timeout(20):
            while not (
                got
                and gw.store.list_deliveries(status="pending")
                and gw.store.list_deliveries(status="pending")[0].attempts >= 1
            ):
                await asyncio.sleep(0.02)
        sender.stop()
        await task
        server.close()
        return gw

    gw = asyncio.run(main())
    [(headers, body)] = got
    event: dict[str, Any] = Webhook(secret).verify(body, headers)
    assert (event["type"], event["data"]["status"]) == ("job.delivered", "delivered")
    assert json.loads(body) == event
    [retrying] = gw.store.list_deliveries(status="pending")
    assert retrying.url == dead
    assert "Connect" in (retrying.last_error or "")
    assert retrying.next_attempt_at.timestamp() > gw.clock.now()  # waits out the schedule
