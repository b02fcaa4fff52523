"""callgate.Client and AsyncClient against the real ``callgate serve`` in a subprocess.

Each test starts the server on a free port (``--port 0``) over a fresh database, reads
the port from its "serving" line on stderr and the first API key from its stdout, talks
to it only through the client, and stops it with SIGTERM, which must exit 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from callgate import AsyncClient, Client
from callgate.domain import Kind, Outcome, Status
from callgate.exceptions import (
    CallgateError,
    IdempotencyConflict,
    InvalidTransition,
    NotFound,
    Unauthorized,
    ValidationError,
)
from callgate.testing import ServeProcess

from .support import PDF, Callgate

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
#: no job here needs more than a fraction of a second; this only bounds a hang
JOB_TIMEOUT = 20.0
SERVER_ENV = {
    "CALLGATE_SIMULATOR_FAX_DURATION": "0.02",
    "CALLGATE_FAX_RETRY_DELAY": "0.05",
    "CALLGATE_RETRY_JITTER": "0",
}
BUSY_TWICE = "+15005550122"
INVALID = "+15005550001"
OK = "+15005550006"


@pytest.fixture
def server(cg: Callgate) -> Iterator[ServeProcess]:
    with ServeProcess.start(
        cwd=cg.home, env=cg.environ(SERVER_ENV), timeout=STARTUP_TIMEOUT
    ) as srv:
        assert not srv.url.endswith(":0")
        assert (cg.home / "callgate.db.key").read_text().strip() == srv.key
        yield srv
        code = srv.stop(STOP_TIMEOUT)
        assert code == 0, f"exit {code} after SIGTERM; stderr:\n{srv.stderr.text}"
        assert "Traceback" not in srv.stderr.text, srv.stderr.text


def client_of(server: ServeProcess) -> Client:
    assert server.key is not None
    return Client(server.url, server.key)


def test_a_fax_to_a_busy_line_is_delivered_on_the_third_attempt(server: ServeProcess) -> None:
    with client_of(server) as cg:
        job = cg.send_fax(BUSY_TWICE, PDF)
        assert job.kind is Kind.FAX
        assert job.to == BUSY_TWICE
        assert job.status in {Status.QUEUED, Status.IN_FLIGHT}
        done = cg.wait_for(job.id, JOB_TIMEOUT, poll=0.02)
    assert done.id == job.id
    assert done.status is Status.DELIVERED
    assert done.attempts == 3
    assert [a.outcome for a in done.attempt_log] == [Outcome.BUSY, Outcome.BUSY, Outcome.DELIVERED]
    assert done.provider_ref is not None
    types = [e.type for e in done.events]
    assert types[0] == "job.queued"
    assert types.count("job.retrying") == 2
    assert types[-1] == "job.delivered"
    assert done.updated_at >= done.created_at


def test_an_sms_to_an_invalid_number_fails_permanently(server: ServeProcess) -> None:
    with client_of(server) as cg:
        job = cg.send_sms(INVALID, body="your ballot is on its way")
        done = cg.wait_for(job.id, JOB_TIMEOUT, poll=0.02)
    assert done.status is Status.FAILED
    assert done.reason == "permanent"
    assert done.attempts == 1
    (attempt,) = done.attempt_log
    assert attempt.outcome is Outcome.PERMANENT
    assert attempt.error_code == "21211"
    assert done.events[-1].type == "job.failed"


def test_the_same_idempotency_key_gives_the_same_job_and_a_changed_body_conflicts(
    server: ServeProcess,
) -> None:
    with client_of(server) as cg:
        first = cg.send_sms(OK, body="hello", idempotency_key="voter-17")
        again = cg.send_sms(OK, body="hello", idempotency_key="voter-17")
        assert again.id == first.id
        assert first.idempotency_key == again.idempotency_key == "voter-17"
        assert (first.replayed, again.replayed) == (False, True)
        with pytest.raises(IdempotencyConflict) as info:
            cg.send_sms(OK, body="goodbye", idempotency_key="voter-17")
        assert [j.id for j in cg.list_jobs()] == [first.id]
    assert info.value.code == "idempotency_conflict"
    assert info.value.field == "idempotency_key"
    assert info.value.http_status == 409


def test_api_errors_arrive_as_the_callgate_error_family(server: ServeProcess) -> None:
    with client_of(server) as cg:
        with pytest.raises(ValidationError) as invalid:
            cg.send_fax("+1 nonsense", PDF)
        with pytest.raises(NotFound) as missing:
            cg.get_job(999_999)
        job = cg.send_sms(OK, body="hi")
        cg.wait_for(job.id, JOB_TIMEOUT, poll=0.02)
        with pytest.raises(InvalidTransition) as ended:
            cg.cancel(job.id)
    with Client(server.url, "cg_not-a-key") as stranger, pytest.raises(Unauthorized) as denied:
        stranger.get_job(job.id)

    assert (invalid.value.code, invalid.value.field, invalid.value.http_status) == (
        "invalid_phone_number",
        "to",
        400,
    )
    assert (missing.value.code, missing.value.http_status) == ("not_found", 404)
    assert (ended.value.code, ended.value.http_status) == ("invalid_state", 409)
    assert (denied.value.code, denied.value.http_status) == ("unauthorized", 401)
    for exc in (invalid, missing, ended, denied):
        assert isinstance(exc.value, CallgateError)
        assert exc.value.message


def test_list_jobs_iterates_across_pages(server: ServeProcess) -> None:
    with client_of(server) as cg:
        sent = [cg.send_sms(OK, body=f"message {i}").id for i in range(5)]
        other = cg.send_sms("+15005550007", body="someone else").id
        listed = [j.id for j in cg.list_jobs(to=OK, page_size=2)]
        everything = [j.id for j in cg.list_jobs(page_size=2)]
        for job_id in sent:
            cg.wait_for(job_id, JOB_TIMEOUT, poll=0.02)
        delivered = list(cg.list_jobs(status=Status.DELIVERED, to=OK, page_size=2))
    assert listed == sorted(sent, reverse=True)
    assert everything == sorted([*sent, other], reverse=True)
    assert {j.id for j in delivered} == set(sent)
    assert all(j.status is Status.DELIVERED for j in delivered)


def test_the_async_client_sends_and_waits(server: ServeProcess) -> None:
    async def scenario() -> list[Status]:
        async with AsyncClient(server.url, server.key) as cg:
            fax = await cg.send_fax(BUSY_TWICE, PDF, idempotency_key="async-fax")
            sms = await cg.send_sms(OK, body="hi")
            done = await asyncio.gather(
                cg.wait_for(fax.id, JOB_TIMEOUT, poll=0.02),
                cg.wait_for(sms.id, JOB_TIMEOUT, poll=0.02),
            )
            listed = [job.id async for job in cg.list_jobs(page_size=1)]
            assert listed == [sms.id, fax.id]
            assert done[0].attempts == 3
            return [job.status for job in done]

    assert asyncio.run(scenario()) == [Status.DELIVERED, Status.DELIVERED]


def test_sigterm_stops_the_server_with_exit_0(server: ServeProcess) -> None:
    with client_of(server) as cg:
        job = cg.send_sms(OK, body="hi")
        assert cg.wait_for(job.id, JOB_TIMEOUT, poll=0.02).status is Status.DELIVERED
    assert server.stop() == 0
