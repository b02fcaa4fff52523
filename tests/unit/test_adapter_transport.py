"""When the provider does not answer: nothing sent is a provider error, a request that went
out and got no answer is unknown (reconciled, never resent blindly), a failed poll is no
news. Against real sockets on 127.0.0.1: one refusing, one that never answers."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from callgate.domain import Job, Kind, Outcome
from callgate.providers.signalwire import SignalWireProvider
from callgate.providers.twilio import TwilioProvider
from tests.factories import in_flight_job


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once it is closed


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections, reads, and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def sms(to: str = "+15005550006") -> Job:
    return dataclasses.replace(in_flight_job(to, Kind.SMS), payload={"body": "hi"})


def twilio(port: int) -> TwilioProvider:
    return TwilioProvider(
        account_sid="AC1",
        auth_token="t",
        from_number="+15005550006",
        base_url=f"http://127.0.0.1:{port}",
        timeout=0.5,
    )


async def closing(provider: Any, work: Any) -> Any:
    try:
        return await work
    finally:
        await provider.aclose()


def test_a_refused_connection_is_a_provider_error(closed_port: int) -> None:
    provider = twilio(closed_port)
    result = asyncio.run(closing(provider, provider.send(sms())))
    assert result.outcome is Outcome.PROVIDER_ERROR


def test_no_answer_to_a_create_is_unknown(silent_port: int) -> None:
    provider = twilio(silent_port)
    result = asyncio.run(closing(provider, provider.send(sms())))
    assert result.outcome is Outcome.UNKNOWN
    assert "no answer" in (result.error_message or "")


def test_no_answer_to_a_lookup_is_a_provider_error(silent_port: int) -> None:
    provider = twilio(silent_port)
    lookup = dataclasses.replace(
        in_flight_job("+15005550006", Kind.REQUEST),
        payload={"api": "lookup", "method": "GET", "params": {}},
    )
    result = asyncio.run(closing(provider, provider.send(lookup)))
    assert result.outcome is Outcome.PROVIDER_ERROR  # asking again is harmless


def test_a_failed_poll_is_no_news(silent_port: int) -> None:
    provider = twilio(silent_port)
    result = asyncio.run(closing(provider, provider.status(sms(), "SM1")))
    assert (result.outcome, result.provider_ref) == (None, "SM1")


def test_a_signalwire_fax_without_an_answer_is_unknown(silent_port: int) -> None:
    provider = SignalWireProvider(
        project_id="p",
        api_token="t",
        space_url=f"http://127.0.0.1:{silent_port}",
        from_number="+15005550006",
        timeout=0.5,
    )
    fax = dataclasses.replace(
        in_flight_job("+15005550006", Kind.FAX), payload={"media_url": "https://e.org/a.pdf"}
    )
    result = asyncio.run(closing(provider, provider.send(fax)))
    assert result.outcome is Outcome.UNKNOWN
