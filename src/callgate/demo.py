"""``callgate demo``: an embedded gateway on SQLite and the simulator, watched live.

It submits a realistic mix (a fax to a line that is busy twice, SMS to good and bad
numbers, several faxes to one number, a line that is always busy, a 429) with delays
shortened, shows each number's queue live, and ends with a table of outcomes -- with a
job the guardrails blocked and one they hold, each saying why.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from callgate.config import load_settings
from callgate.domain import Kind, Status
from callgate.gateway import Gateway

PDF = "https://example.org/ballot-request.pdf"
MIX: list[tuple[Kind, str, dict[str, object]]] = [
    (Kind.FAX, "+15005550122", {"media_url": PDF}),  # busy twice, then delivered
    (Kind.FAX, "+12025550143", {"media_url": PDF}),  # three faxes, one line:
    (Kind.FAX, "+12025550143", {"media_url": PDF}),  # sent one at a time, in order
    (Kind.FAX, "+12025550143", {"media_url": PDF}),
    (Kind.FAX, "+15005550110", {"media_url": PDF, "max_attempts": 3}),  # always busy
    (Kind.SMS, "+15005550006", {"body": "Your ballot request was received."}),
    (Kind.SMS, "+15005550001", {"body": "Invalid number (21211)."}),
    (Kind.SMS, "+15005550004", {"body": "Unsubscribed recipient (21610)."}),
    (Kind.SMS, "+15005550009", {"body": "Not SMS-capable (21614)."}),
    (Kind.SMS, "+15005550131", {"body": "Rate limited once (429), then sent."}),
    (Kind.CALL, "+12025550143", {"twiml": "<Response><Say>Reminder</Say></Response>"}),
    # the guardrails: a stranger outside production is blocked (not allowlisted); a
    # second reminder to one person within the day is held (over the per-recipient cap:
    # a person's number, allowlisted; the simulator's test numbers keep no caps)
    (Kind.SMS, "+12025550199", {"body": "To a stranger: never sent in development."}),
    (Kind.CALL, "+12025550143", {"twiml": "<Response><Say>Reminder again</Say></Response>"}),
]
#: the demo's guardrails, fixed (not from the environment) so that it shows the same
#: thing at any hour: development, one allowlisted real-looking number, one call a day
GUARDRAILS: dict[str, object] = {
    "environment": "development",
    "allowlist": ["+12025550143"],
    "caps": {"fax": None, "sms": None, "call": "1/24h", "request": None},
    "quiet_hours": {"fax": None, "sms": None, "call": None, "request": None},
    "breaker": {"enabled": True},
}
COLUMNS = ("queued", "in_flight", "retrying", "delivered", "failed")


def live_view(gw: Gateway) -> Table:
    table = Table("number", *COLUMNS, "other", title="callgate demo: jobs per number")
    for number, by_status in gw.jobs.summary():
        other = sum(n for s, n in by_status.items() if s not in COLUMNS)
        table.add_row(number, *(str(by_status.get(c, "") or "") for c in COLUMNS), str(other or ""))
    return table


def outcome_table(gw: Gateway) -> Table:
    table = Table("job", "kind", "to", "status", "attempts", "why", title="outcomes")
    for job in sorted(gw.jobs.list(limit=100), key=lambda j: j.id):
        style = {Status.DELIVERED: "green", Status.HELD: "yellow"}.get(job.status, "red")
        table.add_row(
            str(job.id),
            str(job.kind),
            job.to or "",
            f"[{style}]{job.status}",
            str(job.attempts),
            escape(
                f"[{job.reason}] {job.detail}" if job.reason and job.detail else job.detail or ""
            ),
        )
    return table


def run_demo(*, speed: float, database: str | None, console: Console) -> None:
    logging.getLogger("callgate").addHandler(logging.NullHandler())  # the table says it all
    logging.getLogger("callgate").propagate = False
    with tempfile.TemporaryDirectory(prefix="callgate-demo-") as tmp:
        path = database or str(Path(tmp) / "demo.db")
        settings = load_settings(
            database_url=f"sqlite:///{path}",
            rate=5.0 * speed,
            fax_retry_delay=3.0 / speed,
            backoff_base=1.0 / speed,
            simulator_latency=0.2 / speed,
            simulator_fax_duration=2.0 / speed,
            poll_initial=0.5 / speed,
            idle_poll=0.2,
            **GUARDRAILS,
        )
        with Gateway(settings) as gw:
            gw.submit_many([gw.spec(kind, to=to, **fields) for kind, to, fields in MIX])
            asyncio.run(_watch(gw, console))
            console.print(outcome_table(gw))


async def _watch(gw: Gateway, console: Console) -> None:
    worker = gw.worker()
    with Live(live_view(gw), console=console, refresh_per_second=4) as live:
        task = asyncio.create_task(worker.run(drain=True))
        while not task.done():
            live.update(Group(live_view(gw)))
            await asyncio.wait({task}, timeout=0.25)
        live.update(live_view(gw))
        await task
