"""Python client for the callgate HTTP API, synchronous and asynchronous, on httpx.

::

    from callgate import Client

    with Client("http://127.0.0.1:8080", api_key) as cg:
        job = cg.send_fax("+15551234567", "https://example.org/ballot.pdf",
                          idempotency_key="ballot-42")
        done = cg.wait_for(job.id, timeout=600)
        print(done.status, done.attempts)

:class:`AsyncClient` has the same methods, as coroutines (``list_jobs`` is an async
iterator). Results are frozen dataclasses (:class:`RemoteJob`, :class:`RemoteJobDetail`)
with times as aware datetimes and statuses as :class:`~callgate.domain.Status`. Errors
are the :class:`~callgate.exceptions.CallgateError` family, picked by the API's error
``code``, carrying that ``code``, the offending ``field`` and the ``http_status``;
a request that cannot reach the API raises
:class:`~callgate.exceptions.ApiUnavailable` (the httpx error is its ``__cause__``).
"""

from __future__ import annotations

from callgate.client.aio import AsyncClient
from callgate.client.core import (
    RemoteAttempt,
    RemoteEvent,
    RemoteJob,
    RemoteJobDetail,
    RequestOptions,
    SubmitOptions,
    terminal,
)
from callgate.client.sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "RemoteAttempt",
    "RemoteEvent",
    "RemoteJob",
    "RemoteJobDetail",
    "RequestOptions",
    "SubmitOptions",
    "terminal",
]
