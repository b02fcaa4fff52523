"""The ``callgate`` command: send jobs, run workers, inspect and steer jobs.

A thin shell over :class:`callgate.Gateway`. Every command that prints data takes
``--json``; every error is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from callgate.config import Settings, load_settings
from callgate.domain import MAX_ID, Job, Kind, Status, parse_time
from callgate.exceptions import CallgateError, ConfigurationError, StoreError, ValidationError
from callgate.gateway import Gateway

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="callgate",
    help="A reliable gateway for outbound faxes, SMS, calls and provider API requests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
send_app = typer.Typer(help="Submit one job.", no_args_is_help=True)
jobs_app = typer.Typer(help="List, show, cancel and retry jobs.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)
hooks_app = typer.Typer(help="Webhook deliveries and signing secrets.", no_args_is_help=True)
app.add_typer(send_app, name="send")
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")
app.add_typer(hooks_app, name="webhooks")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
#: a job's or batch's id: an id past 64 bits cannot exist (a usage error, not a crash)
IdArgument = Annotated[int, typer.Argument(min=1, max=MAX_ID)]


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn callgate errors into one line on stderr and exit 1 (2 for bad settings)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConfigurationError as exc:
            err.print(f"callgate: {exc.message}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except CallgateError as exc:
            where = f" (field: {exc.field})" if exc.field else ""
            err.print(
                f"callgate: error [{exc.code}]{where}: {exc.message}", markup=False, highlight=False
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("callgate: interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("CALLGATE_DEBUG"):
                raise
            err.print(
                f"callgate: internal error: {exc!r} (set CALLGATE_DEBUG=1 for the traceback)",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(70) from None

    return wrapper


def gateway() -> Gateway:
    return Gateway(load_settings())


def waiting_gateway(settings: Settings) -> Gateway:
    """A gateway for a long-running process: while the database cannot be reached, say
    why and try again (with backoff) instead of exiting into a restart loop."""
    from callgate.engine.worker import Backoff

    backoff = Backoff(first=0.5, cap=10.0)
    while True:
        try:
            return Gateway(settings)
        except StoreError as exc:
            delay = backoff.next()
            err.print(
                f"callgate: {exc.message}; trying again in {delay:.1f} s",
                markup=False,
                highlight=False,
            )
            time.sleep(delay)


def _time(raw: str | None, field: str) -> datetime | None:
    return None if raw is None else parse_time(raw, field=field)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


# -- send ------------------------------------------------------------------------------

IdemKey = Annotated[str | None, typer.Option(help="Same key, same job: safe to repeat.")]
NotBefore = Annotated[str | None, typer.Option(help="Do not send before (ISO 8601).")]
ExpiresAt = Annotated[str | None, typer.Option(help="Give up if not sent by (ISO 8601).")]
Strict = Annotated[
    bool, typer.Option(help="Keep the number's other jobs waiting while this one retries.")
]


def _submit(kind: Kind, as_json: bool, common: dict[str, Any], **fields: Any) -> None:
    with gateway() as gw:
        result = gw.send(
            kind,
            idempotency_key=common["idempotency_key"],
            not_before=_time(common["not_before"], "not_before"),
            expires_at=_time(common["expires_at"], "expires_at"),
            strict_order=common["strict_order"],
            **fields,
        )
    job = result.job
    if as_json:
        print_json(job.to_dict() | {"created": result.created})
    else:
        note = "" if result.created else " (already submitted with this idempotency key)"
        out.print(f"job {job.id}: {job.kind} to {job.to} is {job.status}{note}")
        if job.status in (Status.BLOCKED, Status.HELD) and job.detail:
            out.print(f"why [{job.reason}]: {job.detail}", markup=False)


@send_app.command("fax")
@friendly
def send_fax(
    to: Annotated[str, typer.Option(help="Fax number, E.164 (+15551234567).")],
    media_url: Annotated[str, typer.Option(help="http(s) URL of the PDF to send.")],
    idempotency_key: IdemKey = None,
    not_before: NotBefore = None,
    expires_at: ExpiresAt = None,
    strict_order: Strict = False,
    as_json: JsonFlag = False,
) -> None:
    """Queue a fax."""
    _submit(Kind.FAX, as_json, locals(), to=to, media_url=media_url)


@send_app.command("sms")
@friendly
def send_sms(
    to: Annotated[str, typer.Option(help="Mobile number, E.164.")],
    body: Annotated[str | None, typer.Option(help="Message text.")] = None,
    media_url: Annotated[str | None, typer.Option(help="http(s) URL of media (MMS).")] = None,
    idempotency_key: IdemKey = None,
    not_before: NotBefore = None,
    expires_at: ExpiresAt = None,
    strict_order: Strict = False,
    as_json: JsonFlag = False,
) -> None:
    """Queue an SMS (or MMS)."""
    _submit(Kind.SMS, as_json, locals(), to=to, body=body, media_url=media_url)


@send_app.command("call")
@friendly
def send_call(
    to: Annotated[str, typer.Option(help="Phone number, E.164.")],
    twiml: Annotated[str | None, typer.Option(help="TwiML for the call.")] = None,
    url: Annotated[str | None, typer.Option(help="URL that returns TwiML.")] = None,
    idempotency_key: IdemKey = None,
    not_before: NotBefore = None,
    expires_at: ExpiresAt = None,
    strict_order: Strict = False,
    as_json: JsonFlag = False,
) -> None:
    """Queue a voice call."""
    _submit(Kind.CALL, as_json, locals(), to=to, twiml=twiml, url=url)


# -- worker ----------------------------------------------------------------------------


@app.command()
@friendly
def worker(
    drain: Annotated[
        bool, typer.Option(help="Exit once nothing is queued, in flight or retrying.")
    ] = False,
) -> None:
    """Run a worker: claim, send, track and record jobs until stopped (SIGTERM/SIGINT)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with waiting_gateway(load_settings()) as gw:
        w = gw.worker()

        async def run() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, w.stop)
            services = [asyncio.create_task(t, name=n) for n, t in gw.background_tasks()]
            try:
                await w.run(drain=drain)
            finally:
                gw.stop_background()
                await asyncio.gather(*services)
                await gw.provider.aclose()  # providers (issue 5): close HTTP sessions

        asyncio.run(run())
        stats = w.stats
    err.print(
        f"callgate worker: stopped; sent {stats.sent}, finished {stats.finished}, "
        f"re-slotted {stats.reslotted}"
    )


# -- jobs ------------------------------------------------------------------------------


def job_table(jobs: list[Job]) -> Table:
    table = Table("id", "kind", "to", "status", "attempts", "reason", "updated")
    for job in jobs:
        table.add_row(
            str(job.id),
            str(job.kind),
            job.to or "-",
            str(job.status),
            str(job.attempts),
            job.reason or "",
            job.updated_at.strftime("%H:%M:%S"),
        )
    return table


@jobs_app.command("list")
@friendly
def jobs_list(
    status: Annotated[Status | None, typer.Option(help="Only jobs in this status.")] = None,
    to: Annotated[str | None, typer.Option(help="Only jobs to this number.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    from callgate.domain import normalize_number

    number = None if to is None else normalize_number(to)
    with gateway() as gw:
        jobs = gw.store.list_jobs(status=status, to=number, limit=limit)
    if as_json:
        print_json([j.to_dict() for j in jobs])
    else:
        out.print(job_table(jobs))


@jobs_app.command("show")
@friendly
def jobs_show(
    job_id: Annotated[int, typer.Argument(help="Job id.", min=1, max=MAX_ID)],
    as_json: JsonFlag = False,
) -> None:
    """Show one job with its attempts and events."""
    with gateway() as gw:
        job = gw.job(job_id)
        attempts = gw.store.attempts(job_id)
        events = gw.store.events(job_id)
        audit = gw.store.audit(job_id)
    if as_json:
        print_json(
            job.to_dict()
            | {
                "attempt_log": [a.to_dict() for a in attempts],
                "events": [e.to_dict() for e in events],
                "audit": audit,
            }
        )
        return
    out.print(job_table([job]))
    if job.detail:
        out.print(f"why: {job.detail}", markup=False)
    table = Table("#", "started", "outcome", "ref", "error", title="attempts")
    for a in attempts:
        error = " ".join(x for x in (a.error_code, a.error_message) if x)
        table.add_row(
            str(a.number) + ("" if a.counted else " (not counted)"),
            a.started_at.isoformat(timespec="seconds"),
            str(a.outcome or a.state),
            a.provider_ref or "",
            error,
        )
    out.print(table)
    table = Table("event", "type", "at", "reason", title="events")
    for e in events:
        table.add_row(str(e.id), e.type, e.created_at.isoformat(timespec="seconds"), e.reason or "")
    out.print(table)
    if audit:
        table = Table(
            "#", "request", "status", "ms", "response", title="audit (provider exchanges)"
        )
        for row in audit:
            table.add_row(
                str(row["attempt"] or ""),
                f"{row['method']} {row['url']}\n{row['request'] or ''}",
                str(row["status"] or row["error"] or ""),
                f"{row['duration'] * 1000:.0f}",
                (row["response"] or "")[:500],
            )
        out.print(table, markup=False)


def _steer(job_id: int, as_json: bool, action: str) -> None:
    with gateway() as gw:
        job = gw.cancel(job_id) if action == "cancel" else gw.retry(job_id)
    if as_json:
        print_json(job.to_dict())
    elif job.cancel_requested and job.status is Status.IN_FLIGHT:
        out.print(f"job {job.id} is in flight; it will be canceled when its attempt ends")
    else:
        out.print(f"job {job.id} is {job.status}")


@jobs_app.command("cancel")
@friendly
def jobs_cancel(job_id: IdArgument, as_json: JsonFlag = False) -> None:
    """Cancel a job: at once if waiting, after its attempt ends if in flight."""
    _steer(job_id, as_json, "cancel")


@jobs_app.command("retry")
@friendly
def jobs_retry(
    job_id: Annotated[
        int | None, typer.Argument(help="One job (or filters below).", min=1, max=MAX_ID)
    ] = None,
    status: Annotated[
        list[Status] | None,
        typer.Option(help="Jobs in this status (repeatable; default: failed)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="...that entered it at or after (ISO 8601).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="...with this reason.")] = None,
    batch: Annotated[int | None, typer.Option(help="...of this batch.", min=1, max=MAX_ID)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a failed, canceled, held, uncertain or blocked job again, with a fresh
    attempt budget; or every job the filters match (at least one is required)."""
    filtered = bool(status) or since is not None or reason is not None or batch is not None
    if job_id is not None:
        if filtered:
            raise ValidationError("give a job id or filters, not both", field="job_id")
        _steer(job_id, as_json, "retry")
        return
    with gateway() as gw:
        n = gw.retry_matching(
            statuses=status or (), since=_time(since, "since"), reason=reason, batch_id=batch
        )
    if as_json:
        print_json({"retried": n})
    else:
        out.print(f"queued {n} job(s) again")


# -- serve and keys --------------------------------------------------------------------


@app.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (0: any free port).")] = None,
) -> None:
    """Run the HTTP API, a worker and the webhook sender in one process."""
    from callgate import auth
    from callgate.server import serve as run_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = load_settings(**overrides)
    with waiting_gateway(settings) as gw:
        path = getattr(gw.store, "path", None)
        token = auth.ensure_first_key(gw.store, path, gw.clock.now())
        if token is not None:
            where = f" (also in {auth.key_file_for(path)}, mode 0600)" if path else ""
            err.print(f"callgate: created the first API key{where}:")
            out.print(token, markup=False, highlight=False)

        def ready(bound: int) -> None:
            err.print(f"callgate: serving http://{settings.host}:{bound} (docs: /docs)")

        with asyncio.Runner(loop_factory=_fast_loop_factory()) as runner:
            runner.run(run_server(gw, settings.host, settings.port, on_ready=ready))


def _fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (it comes with uvicorn[standard]), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


@keys_app.command("create")
@friendly
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses this key.")],
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from callgate import auth

    with gateway() as gw:
        key, token = auth.create_key(gw.store, name, gw.clock.now())
    if as_json:
        print_json(key.to_dict() | {"key": token})
    else:
        out.print(token, markup=False, highlight=False)
        err.print(f"callgate: key {key.id} ({name}) created; it is shown only this once")


@keys_app.command("list")
@friendly
def keys_list(as_json: JsonFlag = False) -> None:
    """List API keys (ids and prefixes, never the keys)."""
    with gateway() as gw:
        keys = gw.store.api_keys()
    if as_json:
        print_json([k.to_dict() for k in keys])
        return
    table = Table("id", "name", "prefix", "created", "revoked")
    for k in keys:
        table.add_row(
            k.id,
            k.name,
            k.prefix + "…",
            k.created_at.isoformat(timespec="seconds"),
            "" if k.revoked_at is None else k.revoked_at.isoformat(timespec="seconds"),
        )
    out.print(table)


@keys_app.command("revoke")
@friendly
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    with gateway() as gw:
        if not gw.store.revoke_api_key(key_id, gw.clock.now()):
            from callgate.exceptions import NotFound

            raise NotFound(f"no active API key {key_id}", field="key_id")
    out.print(f"revoked {key_id}")


# -- webhooks --------------------------------------------------------------------------


@hooks_app.command("list")
@friendly
def webhooks_list(
    status: Annotated[
        str | None, typer.Option(help="pending, delivered, failed (dead letters) or stopped.")
    ] = None,
    job: Annotated[
        int | None, typer.Option(help="Only this job's deliveries.", min=1, max=MAX_ID)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List webhook deliveries, newest first."""
    if status not in (None, "pending", "delivered", "failed", "stopped"):
        from callgate.exceptions import ValidationError

        raise ValidationError(f"unknown delivery status {status!r}", field="status")
    with gateway() as gw:
        found = gw.store.list_deliveries(status=status, job_id=job, limit=limit)
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    table = Table("id", "job", "event", "url", "status", "attempts", "last")
    for d in found:
        last = " ".join(str(x) for x in (d.last_status_code, d.last_error) if x)
        table.add_row(
            str(d.id), str(d.job_id), str(d.event_id), d.url, d.status, str(d.attempts), last[:60]
        )
    out.print(table)


@hooks_app.command("replay")
@friendly
def webhooks_replay(
    delivery_id: Annotated[
        int | None, typer.Argument(help="One delivery's id.", min=1, max=MAX_ID)
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Every failed delivery created since (ISO 8601).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send deliveries again: one by id, or every failed one since a time."""
    from callgate.exceptions import ValidationError

    if (delivery_id is None) == (since is None):
        raise ValidationError("give either a delivery id or --since", field="since")
    with gateway() as gw:
        now = gw.clock.now()
        if delivery_id is not None:
            n = gw.store.replay_deliveries(now, delivery_id=delivery_id)
        else:
            n = gw.store.replay_deliveries(
                now, since=parse_time(str(since), field="since").timestamp()
            )
    if as_json:
        print_json({"replayed": n})
    else:
        out.print(f"replayed {n} deliveries; a running worker or server sends them")


@hooks_app.command("secret")
@friendly
def webhooks_secret(as_json: JsonFlag = False) -> None:
    """Show the active signing secrets (one is generated if none is configured)."""
    from callgate.webhooks.sender import active_secrets

    with gateway() as gw:
        found = active_secrets(gw.settings, gw.store, gw.clock.now())
    if as_json:
        print_json({"secrets": found})
    else:
        for secret in found:
            out.print(secret, markup=False, highlight=False)


# -- admin -----------------------------------------------------------------------------


@app.command()
@friendly
def migrate(as_json: JsonFlag = False) -> None:
    """Create or upgrade the database schema."""
    from callgate.store import open_store

    store = open_store(load_settings().database_url, migrate=False)
    try:
        applied = store.migrate()
    finally:
        store.close()
    if as_json:
        print_json({"applied": applied})
    else:
        out.print("applied: " + (", ".join(applied) or "nothing, the schema is current"))


@app.command()
@friendly
def demo(
    speed: Annotated[float, typer.Option(help="Run the demo this many times faster.")] = 1.0,
    database: Annotated[
        str | None, typer.Option(help="Keep the demo's database here (default: temporary).")
    ] = None,
) -> None:
    """Run an embedded gateway on SQLite with the simulator and watch a mix of jobs."""
    from callgate.demo import run_demo

    run_demo(speed=speed, database=database, console=out)


# -- the simulator over HTTP (issue 5) -------------------------------------------------

SimFloat = Annotated[float, typer.Option(min=0.0)]


def _sim_option(help: str, env: str) -> Any:
    return typer.Option(help=help, envvar=f"CALLGATE_SIMULATOR_{env}")


@app.command()
@friendly
def simulator(
    host: Annotated[str, _sim_option("Address to listen on.", "HOST")] = "127.0.0.1",
    port: Annotated[int, _sim_option("Port (0: any free port; printed).", "PORT")] = 8090,
    log: Annotated[str | None, _sim_option("Append one JSON line per call here.", "LOG")] = None,
    latency: Annotated[float, _sim_option("Seconds each API call takes.", "LATENCY")] = 0.0,
    callback_delay: Annotated[
        float,
        _sim_option("Seconds until an SMS or call ends (and its callback).", "CALLBACK_DELAY"),
    ] = 0.0,
    fax_duration: Annotated[
        float, _sim_option("Seconds a fax takes (errors: a quarter).", "FAX_DURATION")
    ] = 0.0,
    mix: Annotated[
        str | None, _sim_option('Outcomes of other numbers, JSON: {"busy": 0.2}.', "MIX")
    ] = None,
    seed: Annotated[int | None, _sim_option("Seed for the randomness.", "SEED")] = None,
    callbacks: Annotated[
        bool, _sim_option("Post status callbacks (off: a polling-only baseline).", "CALLBACKS")
    ] = True,
    drop_callbacks: Annotated[
        float, _sim_option("Fraction of callbacks to drop (tests polling).", "DROP_CALLBACKS")
    ] = 0.0,
    twilio_account_sid: Annotated[str, _sim_option("Twilio account SID.", "TWILIO_ACCOUNT_SID")] = (
        "ACsimulator"
    ),
    twilio_auth_token: Annotated[str, _sim_option("Twilio auth token.", "TWILIO_AUTH_TOKEN")] = (
        "simulator-auth-token"
    ),
    signalwire_project_id: Annotated[
        str, _sim_option("SignalWire project ID.", "SIGNALWIRE_PROJECT_ID")
    ] = "simulator-project",
    signalwire_api_token: Annotated[
        str, _sim_option("SignalWire API token.", "SIGNALWIRE_API_TOKEN")
    ] = "simulator-api-token",
    signalwire_signing_key: Annotated[
        str, _sim_option("SignalWire signing key (callbacks).", "SIGNALWIRE_SIGNING_KEY")
    ] = "simulator-signing-key",
    telnyx_api_key: Annotated[str, _sim_option("Telnyx API key.", "TELNYX_API_KEY")] = (
        "KEYsimulator"
    ),
    telnyx_private_key: Annotated[
        str | None,
        _sim_option(
            "Base64 Ed25519 seed signing webhooks (default: a new one).", "TELNYX_PRIVATE_KEY"
        ),
    ] = None,
) -> None:
    """Run the simulator over HTTP: Twilio, SignalWire and Telnyx REST shapes on one port."""
    params = dict(locals())  # exactly the options: nothing else is named here yet
    from callgate.providers.sim_http import SimOptions, parse_mix, run

    if not 0.0 <= drop_callbacks <= 1.0:
        from callgate.exceptions import ValidationError

        raise ValidationError("--drop-callbacks must be between 0 and 1", field="drop_callbacks")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("callgate.simulator").setLevel(logging.INFO)  # dropped callbacks
    options = SimOptions(**(params | {"mix": parse_mix(mix)}))

    def ready(server: Any, bound: int) -> None:
        url = f"http://{host}:{bound}"
        ready_line = {"url": url, "port": bound, "telnyx_public_key": server.public_key}
        sys.stdout.write(json.dumps(ready_line) + "\n")  # one line, for scripts to read
        sys.stdout.flush()
        err.print(f"callgate simulator: serving {url}", markup=False, highlight=False)

    run(options, ready)


# -- end of the simulator block ----------------------------------------------------------


from callgate.cli_batch import batch_app  # noqa: E402 (it uses the helpers above)

app.add_typer(batch_app, name="batch")


def main() -> None:
    import callgate.cli_guardrails  # noqa: F401  (adds allowlist, suppress, breaker)

    app()
