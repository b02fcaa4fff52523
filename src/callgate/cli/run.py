"""``callgate worker``, ``serve``, ``migrate``, ``demo``: the long-running processes and
the schema."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Annotated, Any

import typer

from callgate import logs
from callgate.cli.common import (
    JsonFlag,
    err,
    friendly,
    out,
    print_json,
    waiting_gateway,
)
from callgate.config import load_settings

commands = typer.Typer()

# -- worker ----------------------------------------------------------------------------


@commands.command()
@friendly
def worker(
    drain: Annotated[
        bool, typer.Option(help="Exit once nothing is queued, in flight or retrying.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics at http://HOST:N/metrics.", min=0, max=65535),
    ] = None,
    metrics_host: Annotated[
        str | None, typer.Option(help="Address of the metrics server (default: CALLGATE_HOST).")
    ] = None,
) -> None:
    """Run a worker: claim, send, track and record jobs until stopped (SIGTERM/SIGINT)."""
    settings = load_settings()
    logs.configure(settings.log_format, settings.log_level)
    with waiting_gateway(settings) as gw:
        w = gw.worker()

        async def run() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, w.stop)
            services = [asyncio.create_task(t, name=n) for n, t in gw.background_tasks()]
            metrics = None
            if metrics_port is not None:
                from callgate.api.app import metrics_app
                from callgate.server import http_server

                host = metrics_host or settings.host
                metrics = http_server(metrics_app(gw), host, metrics_port)
                services.append(asyncio.create_task(metrics.serve(), name="callgate-metrics"))
            try:
                await w.run(drain=drain)
            finally:
                gw.stop_background()
                if metrics is not None:
                    metrics.should_exit = True
                await asyncio.gather(*services)
                await gw.provider.aclose()  # providers (issue 5): close HTTP sessions

        asyncio.run(run())
        stats = w.stats
    err.print(
        f"callgate worker: stopped; sent {stats.sent}, finished {stats.finished}, "
        f"re-slotted {stats.reslotted}"
    )


# -- serve and keys --------------------------------------------------------------------


@commands.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (0: any free port).")] = None,
) -> None:
    """Run the HTTP API, a worker and the webhook sender in one process."""
    from callgate.server import serve as run_server

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = load_settings(**overrides)
    logs.configure(settings.log_format, settings.log_level)
    with waiting_gateway(settings) as gw:
        token, key_file = gw.keys.ensure_first()
        if token is not None:
            where = f" (also in {key_file}, mode 0600)" if key_file else ""
            err.print(f"callgate: created the first API key{where}:")
            out.print(token, markup=False, highlight=False)

        def ready(bound: int) -> None:
            err.print(
                f"callgate: serving http://{settings.host}:{bound} "
                "(dashboard: /dashboard, docs: /docs)"
            )

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


# -- admin -----------------------------------------------------------------------------


@commands.command()
@friendly
def migrate(as_json: JsonFlag = False) -> None:
    """Create or upgrade the database schema."""
    from callgate.services import migrate as migrate_schema

    applied = migrate_schema(load_settings().database_url)
    if as_json:
        print_json({"applied": applied})
    else:
        out.print("applied: " + (", ".join(applied) or "nothing, the schema is current"))


@commands.command()
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
