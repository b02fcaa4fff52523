"""Structured logs: one JSON object a line with the job's fields where they apply, the
default human text, the level, and never a credential (numbers and content masked under
``audit.mask_pii``)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from callgate import logs
from callgate.config import Settings
from callgate.engine.audit import RedactingFilter, Redactor


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_defaults_are_text_at_info() -> None:
    settings = Settings(database_url="sqlite:///:memory:")
    assert (settings.log_format, settings.log_level) == ("text", "info")


def test_the_settings_take_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLGATE_LOG_FORMAT", "JSON")
    monkeypatch.setenv("CALLGATE_LOG_LEVEL", "Debug")
    settings = Settings(database_url="sqlite:///:memory:")
    assert (settings.log_format, settings.log_level) == ("json", "debug")


@pytest.mark.usefixtures("restore_root")
def test_a_json_line_has_the_fields_and_the_bound_job() -> None:
    stream = io.StringIO()
    logs.configure("json", "info", stream)
    log = logging.getLogger("callgate.worker")

    async def job_task(job_id: int) -> None:
        logs.bind(job_id=job_id, batch_id=None, provider="simulator")
        logs.bind(attempt=2, provider_ref="SM123")
        log.warning("job %s: status poll failed", job_id)

    async def main() -> None:
        await asyncio.gather(asyncio.create_task(job_task(7)), asyncio.create_task(job_task(8)))
        log.info("outside any job")  # the tasks' fields stay in their tasks

    asyncio.run(main())
    first, second, outside = lines(stream)
    assert set(first) == {
        "timestamp", "level", "event", "logger", "job_id", "attempt", "provider", "provider_ref"
    }  # fmt: skip
    assert first["event"] == "job 7: status poll failed"
    assert first["level"] == "warning"
    assert (first["job_id"], first["attempt"], first["provider_ref"]) == (7, 2, "SM123")
    assert str(first["timestamp"]).endswith("Z")
    assert second["job_id"] == 8
    assert "batch_id" not in first  # None: not there
    assert "job_id" not in outside


@pytest.mark.usefixtures("restore_root")
def test_the_level_filters_and_exceptions_are_kept() -> None:
    stream = io.StringIO()
    logs.configure("json", "warning", stream)
    log = logging.getLogger("callgate.test")
    log.info("not shown")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("it failed")
    [line] = lines(stream)
    assert line["level"] == "error"
    assert "RuntimeError: boom" in str(line["exception"])


@pytest.mark.usefixtures("restore_root")
def test_text_stays_human() -> None:
    stream = io.StringIO()
    logs.configure("text", "info", stream)
    logging.getLogger("callgate.test").info("hello %s", "there")
    text = stream.getvalue()
    assert text.rstrip().endswith("callgate.test hello there")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def _redacted_line(redactor: Redactor, message: str) -> dict[str, object]:
    stream = io.StringIO()
    handler = logs.configure("json", "info", stream)
    redacting = RedactingFilter()
    redacting.redactors.append(redactor)
    handler.addFilter(redacting)
    logging.getLogger("callgate.test").error(message)
    [line] = lines(stream)
    return line


@pytest.mark.usefixtures("restore_root")
def test_never_a_credential() -> None:
    redactor = Redactor.of(["AC-secret-token-1234"], mask_pii=False)
    line = _redacted_line(redactor, "twilio said 401 for AC-secret-token-1234 to +15005550006")
    assert "AC-secret-token-1234" not in json.dumps(line)
    assert "+15005550006" in str(line["event"])  # numbers stay without mask_pii


@pytest.mark.usefixtures("restore_root")
def test_numbers_and_content_are_masked_under_mask_pii() -> None:
    redactor = Redactor.of([], mask_pii=True)
    line = _redacted_line(redactor, 'sending {"to": "+15005550006", "body": "your ballot"}')
    text = json.dumps(line)
    assert "+15005550006" not in text
    assert "your ballot" not in text
